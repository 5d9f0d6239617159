"""What each algorithm option means: the `--help` text of every config field (the fields' names are
shared across algorithms where they mean the same thing)."""

OPTION_HELP = {
    # every algorithm
    "hidden_dims": "hidden layer widths of every network", "batch_size": "transitions per update",
    "max_steps": "number of updates (online: environment steps)", "discount": "discount gamma",
    "seed": "random seed (initial weights, batches, action noise)",
    # BC
    "lr": "learning rate", "policy": "deterministic (MSE to the data's action) or gaussian (max-likelihood)",
    "log_std_min": "Gaussian policy: lower clamp of the log-std", "log_std_max": "Gaussian policy: upper clamp of the log-std",
    # SAC and the methods built on it
    "policy_lr": "actor learning rate", "qf_lr": "critic learning rate", "alpha_lr": "temperature learning rate",
    "tau": "Polyak rate of the target networks", "target_update_period": "updates between target-network updates",
    "orthogonal_init": "orthogonal initialisation of the critics (CORL)",
    "policy_log_std_multiplier": "actor log-std = multiplier * raw + offset (before clamping)",
    "policy_log_std_offset": "see policy_log_std_multiplier",
    "learn_log_std_scale": "learn the log-std multiplier and offset (CORL's CQL)",
    "use_automatic_entropy_tuning": "tune the temperature alpha towards target_entropy",
    "initial_alpha": "initial (or fixed) temperature alpha", "alpha_multiplier": "alpha = exp(log_alpha) * multiplier",
    "target_entropy": "entropy target of the temperature (default -action_dim)",
    "backup_entropy": "soft backup: subtract alpha * log pi(a'|s') in the TD target",
    # CQL, Cal-QL
    "cql_alpha": "weight of the conservative penalty", "cql_n_actions": "sampled actions per state (uniform, pi(s), pi(s'))",
    "cql_temp": "temperature of the penalty's logsumexp", "cql_importance_sample": "subtract each sampler's log density (CQL(H))",
    "cql_lagrange": "tune the penalty's weight by dual descent against cql_target_action_gap",
    "cql_target_action_gap": "the gap the Lagrange form aims at", "cql_max_target_backup": "TD target: max over cql_n_actions samples at s'",
    "cql_clip_diff_min": "clip the per-state gap below", "cql_clip_diff_max": "clip the per-state gap above",
    "bc_steps": "first updates train the actor by behaviour cloning",
    "calql": "Cal-QL: Q at pi's actions pushed down no further than the data's Monte-Carlo return",
    # IQL
    "actor_lr": "actor learning rate", "critic_lr": "critic learning rate", "value_lr": "value network learning rate",
    "expectile": "expectile tau of the value loss (0.5: mean; towards 1: max)",
    "beta": "inverse temperature of the advantage weights exp(beta * A)", "max_weight": "clip of the advantage weights",
    "deterministic_actor": "deterministic actor trained by weighted MSE (CORL's hopper override)",
    "actor_log_std_min": "lower clamp of the actor's log-std", "actor_log_std_max": "upper clamp of the actor's log-std",
    "cosine_lr_decay": "actor learning rate decays by a cosine to 0 over max_steps (official IQL)",
    # AWAC
    "actor_weight_decay": "L2 weight decay of the actor", "awac_lambda": "temperature lambda of the weights exp(A / lambda)",
    "normalize_weights": "normalise the advantage weights over the batch (the paper's code)",
    "tanh_mean": "squash the actor's mean with tanh",
    # MOPO / COMBO
    "dynamics": "fitted dynamics ensemble to reuse (path or Hub repo id; default: fit one in this run)",
    "dynamics_max_epochs": "most epochs of the ensemble fit (0: until early stopping)",
    "rollout_freq": "updates between model rollouts", "rollout_batch_size": "start states per rollout",
    "rollout_length": "rollout horizon h", "model_retain_epochs": "rollouts the FIFO model buffer keeps",
    "real_ratio": "fraction of each batch from the real data", "penalty": "MOPO's uncertainty: aleatoric, pairwise-diff or ensemble-std",
    "penalty_coef": "MOPO's lambda: model reward r - lambda * u(s, a)",
    "combo_states": "COMBO's push-down rows: mix (the whole batch) or model (model rows only)",
    # BRAC
    "brac_variant": "v: KL in the value target and the actor; p: in the actor only",
    "kl_coef": "lambda, the KL weight (initial value with kl_dual)", "kl_dual": "tune lambda by dual descent against kl_target",
    "kl_target": "the KL the dual descent aims at", "kl_coef_max": "upper clip of lambda", "kl_lr": "learning rate of lambda",
    "kl_samples": "actions of pi per state in the KL estimate", "behaviour_steps": "first updates fit the behaviour policy by max-likelihood",
    "behaviour_lr": "learning rate of the behaviour policy",
    "warm_start": "updates after the behaviour phase where the actor minimises the KL alone",
}
