"""End-to-end checks of the fake Hub (tests/hub_server.py) with the real clients over HTTP.

These guard the test infrastructure itself: if the server or the way
huggingface_hub / datasets talk to it changes, these fail first.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, HfFileSystem, RepoFolder, hf_hub_download, hf_hub_url, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

BINARY_SIZE = 200_000  # well above the LFS threshold


@pytest.fixture(autouse=True)
def _no_server_errors(hub_server):
    """Any exception inside the fake hub fails the test that triggered it."""
    before = len(hub_server.errors)
    yield
    assert hub_server.errors[before:] == [], "\n".join(hub_server.errors[before:])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_tree(root: str | Path) -> dict[str, bytes]:
    """All files under `root` (following the cache's symlinks) as {posix relpath: bytes}."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@dataclass
class UploadedRepo:
    repo_id: str
    repo_type: str
    files: dict[str, bytes]  # content at `head`
    initial: str  # the Hub's "initial commit" (only .gitattributes)
    folder_commit: str  # after upload_folder
    head: str  # after upload_file (config.json v2)
    config_v1: bytes

    @property
    def fs_prefix(self) -> str:  # HfFileSystem path of the repo
        return f"datasets/{self.repo_id}" if self.repo_type == "dataset" else self.repo_id


@pytest.fixture(scope="module", params=["model", "dataset"])
def uploaded_repo(request, hub_server, tmp_path_factory) -> UploadedRepo:
    """A repo with two commits: upload_folder (text, json, ~200 KB binary), then upload_file."""
    repo_type = request.param
    api = HfApi(endpoint=hub_server.url, token=hub_server.token)
    repo_id = f"test-user/uploaded-{repo_type}-{os.urandom(4).hex()}"
    api.create_repo(repo_id, repo_type=repo_type)
    initial = api.repo_info(repo_id, repo_type=repo_type).sha

    folder = tmp_path_factory.mktemp(f"upload-{repo_type}")
    config_v1 = json.dumps({"hidden_size": 8, "kind": repo_type}).encode()
    local = {
        "notes.txt": b"small text file\n",
        "config.json": config_v1,
        "weights/model.safetensors": os.urandom(BINARY_SIZE),
    }
    for rel, data in local.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    folder_commit = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type=repo_type).oid

    config_v2 = json.dumps({"hidden_size": 16, "kind": repo_type}).encode()
    head = api.upload_file(
        path_or_fileobj=config_v2, path_in_repo="config.json", repo_id=repo_id, repo_type=repo_type
    ).oid

    gitattributes = hub_server.read_file(repo_id, ".gitattributes", repo_type)  # from the "initial commit"
    files = {**local, "config.json": config_v2, ".gitattributes": gitattributes}
    return UploadedRepo(repo_id, repo_type, files, initial, folder_commit, head, config_v1)


# ----------------------------------------------------------------------------- repos & commits


def test_create_repo_conflict_and_exist_ok(hub_api, hub_repo_id):
    url = hub_api.create_repo(hub_repo_id)
    assert url.repo_id == hub_repo_id and url.repo_type == "model"

    with pytest.raises(HfHubHTTPError) as err:
        hub_api.create_repo(hub_repo_id)
    assert err.value.response.status_code == 409
    assert hub_api.create_repo(hub_repo_id, exist_ok=True).repo_id == hub_repo_id

    info = hub_api.repo_info(hub_repo_id)
    assert re.fullmatch(r"[0-9a-f]{40}", info.sha)
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]
    assert hub_api.repo_exists(hub_repo_id) and not hub_api.repo_exists(hub_repo_id + "-missing")

    hub_api.delete_repo(hub_repo_id)
    assert not hub_api.repo_exists(hub_repo_id)


def test_writes_require_the_token(hub_server, hub_repo_id):
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(endpoint=hub_server.url, token="hf_wrong_token").create_repo(hub_repo_id)
    assert err.value.response.status_code == 401


def test_private_repo_needs_the_token(hub_api, hub_server, hub_repo_id):
    hub_api.create_repo(hub_repo_id, private=True)
    assert hub_api.repo_info(hub_repo_id).private
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub_server.url, token=False).repo_info(hub_repo_id)


def test_commits_get_new_shas_and_refs_follow(hub_api, uploaded_repo):
    repo = uploaded_repo
    assert len({repo.initial, repo.folder_commit, repo.head}) == 3
    assert hub_api.repo_info(repo.repo_id, repo_type=repo.repo_type).sha == repo.head
    old_info = hub_api.repo_info(repo.repo_id, repo_type=repo.repo_type, revision=repo.folder_commit)
    assert old_info.sha == repo.folder_commit

    refs = hub_api.list_repo_refs(repo.repo_id, repo_type=repo.repo_type)
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", repo.head)]

    commits = hub_api.list_repo_commits(repo.repo_id, repo_type=repo.repo_type)
    assert [c.commit_id for c in commits] == [repo.head, repo.folder_commit, repo.initial]
    assert commits[0].title == "Upload config.json with huggingface_hub"


def test_branches_tags_and_parent_commit(hub_api, hub_repo_id, fresh_hf_cache):
    def upload(content: bytes, **kwargs):
        return hub_api.upload_file(path_or_fileobj=content, path_in_repo="f.txt", repo_id=hub_repo_id, **kwargs)

    hub_api.create_repo(hub_repo_id)
    first = upload(b"v1").oid
    hub_api.create_branch(hub_repo_id, branch="dev")
    hub_api.create_branch(hub_repo_id, branch="dev", exist_ok=True)
    on_dev = upload(b"v2", revision="dev").oid
    hub_api.create_tag(hub_repo_id, tag="v1.0", revision=first)

    refs = hub_api.list_repo_refs(hub_repo_id)
    assert {(b.name, b.target_commit) for b in refs.branches} == {("main", first), ("dev", on_dev)}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", first)]
    for revision, content in (("dev", b"v2"), ("v1.0", b"v1"), ("main", b"v1"), (on_dev[:10], b"v2")):
        path = hf_hub_download(hub_repo_id, "f.txt", revision=revision, cache_dir=fresh_hf_cache.hub_cache)
        assert Path(path).read_bytes() == content, revision

    # A stale parent_commit is refused with 412, as `datasets.push_to_hub` expects.
    with pytest.raises(HfHubHTTPError) as err:
        upload(b"v3", revision="dev", parent_commit=first)
    assert err.value.response.status_code == 412

    pr = upload(b"pr", create_pr=True)
    assert pr.pr_revision == "refs/pr/1"
    assert hub_api.repo_info(hub_repo_id).sha == first  # a PR does not move main
    path = hf_hub_download(hub_repo_id, "f.txt", revision=pr.pr_revision, cache_dir=fresh_hf_cache.hub_cache)
    assert Path(path).read_bytes() == b"pr"


def test_unchanged_upload_creates_no_commit(hub_api, uploaded_repo):
    repo = uploaded_repo
    same = repo.files["notes.txt"]
    info = hub_api.upload_file(
        path_or_fileobj=same, path_in_repo="notes.txt", repo_id=repo.repo_id, repo_type=repo.repo_type
    )
    assert info.oid == repo.head  # preupload reported the same oid, so the client skipped the commit


# ----------------------------------------------------------------------------- upload routing


def test_binary_goes_through_lfs_text_does_not(hub_api, hub_server, uploaded_repo):
    repo = uploaded_repo
    binary = repo.files["weights/model.safetensors"]
    blobs = hub_server.repo_files(repo.repo_id, repo.repo_type)
    assert blobs["weights/model.safetensors"].lfs
    assert not blobs["notes.txt"].lfs and not blobs["config.json"].lfs

    # The bytes were PUT to the LFS upload URL handed out by the batch API, then verified.
    lfs_url = f"/_lfs/{sha256(binary)}"
    lfs_calls = {(m, p) for m, p, status in hub_server.requests if p.startswith(lfs_url) and status == 200}
    assert lfs_calls == {("PUT", lfs_url), ("POST", f"{lfs_url}/verify")}

    entries = {e.path: e for e in hub_api.list_repo_tree(repo.repo_id, repo_type=repo.repo_type, recursive=True)}
    assert entries["weights/model.safetensors"].lfs.sha256 == sha256(binary)
    assert entries["weights/model.safetensors"].size == BINARY_SIZE
    assert entries["notes.txt"].lfs is None
    assert isinstance(entries["weights"], RepoFolder)


def test_lfs_rules_match_the_hub(hub_api, hub_server, hub_repo_id, tmp_path):
    """LFS when matched by .gitattributes, binary (NUL byte), or at least the size threshold."""
    files = {
        "tiny.pt": b"matched by a .gitattributes pattern",
        "tiny.dat": b"binary\x00content",
        "big.txt": b"x" * hub_server.lfs_threshold,
        "small.txt": b"x" * (hub_server.lfs_threshold - 1),
        "empty.bin": b"",  # empty files are never LFS
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    hub_api.create_repo(hub_repo_id)
    hub_api.upload_folder(folder_path=tmp_path, repo_id=hub_repo_id)
    blobs = hub_server.repo_files(hub_repo_id)
    assert {name for name in files if blobs[name].lfs} == {"tiny.pt", "tiny.dat", "big.txt"}
    for name, data in files.items():
        assert hub_server.read_file(hub_repo_id, name) == data


def test_lfs_put_accepts_chunked_and_rejects_corrupt_bodies(hub_server):
    data = os.urandom(3000)
    url = f"{hub_server.url}/_lfs/{sha256(data)}"
    # A generator body has no length: httpx2 streams it with Transfer-Encoding: chunked.
    assert httpx2.put(url, content=(data[i : i + 1000] for i in range(0, len(data), 1000))).status_code == 200
    assert httpx2.get(url).content == data
    assert httpx2.put(f"{hub_server.url}/_lfs/{sha256(b'other')}", content=data).status_code == 400


# ----------------------------------------------------------------------------- listing


def test_list_files_tree_and_paths_info(hub_api, uploaded_repo):
    repo = uploaded_repo
    kw = dict(repo_id=repo.repo_id, repo_type=repo.repo_type)
    assert sorted(hub_api.list_repo_files(**kw)) == sorted(repo.files)
    assert sorted(hub_api.list_repo_files(**kw, revision=repo.initial)) == [".gitattributes"]

    top = {e.path for e in hub_api.list_repo_tree(**kw)}
    assert top == {".gitattributes", "notes.txt", "config.json", "weights"}
    assert [e.path for e in hub_api.list_repo_tree(**kw, path_in_repo="weights")] == ["weights/model.safetensors"]

    with_commit = {e.path: e for e in hub_api.list_repo_tree(**kw, expand=True)}
    assert with_commit["config.json"].last_commit.oid == repo.head
    assert with_commit["notes.txt"].last_commit.oid == repo.folder_commit

    infos = hub_api.get_paths_info(**kw, paths=["config.json", "weights", "missing.bin"])
    assert {(isinstance(i, RepoFolder), i.path) for i in infos} == {(False, "config.json"), (True, "weights")}

    assert hub_api.file_exists(**kw, filename="weights/model.safetensors")
    assert not hub_api.file_exists(**kw, filename="missing.bin")
    assert not hub_api.file_exists(**kw, filename="config.json", revision=repo.initial)


# ----------------------------------------------------------------------------- downloads


def test_hf_hub_download_into_fresh_cache(uploaded_repo, fresh_hf_cache):
    repo = uploaded_repo
    local = {
        path: Path(hf_hub_download(repo.repo_id, path, repo_type=repo.repo_type, cache_dir=fresh_hf_cache.hub_cache))
        for path in repo.files
    }
    for path, data in repo.files.items():
        assert local[path].read_bytes() == data, path
        assert local[path].is_relative_to(fresh_hf_cache.hub_cache) and repo.head in local[path].parts
    # The cache names blobs by ETag: sha256 for LFS files, git blob sha1 otherwise.
    assert local["weights/model.safetensors"].resolve().name == sha256(repo.files["weights/model.safetensors"])
    text = repo.files["notes.txt"]
    assert local["notes.txt"].resolve().name == hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest()


def test_download_at_an_old_commit(uploaded_repo, fresh_hf_cache):
    repo = uploaded_repo
    kw = dict(repo_type=repo.repo_type, cache_dir=fresh_hf_cache.hub_cache)
    old = hf_hub_download(repo.repo_id, "config.json", revision=repo.folder_commit, **kw)
    assert Path(old).read_bytes() == repo.config_v1
    assert Path(hf_hub_download(repo.repo_id, "config.json", **kw)).read_bytes() == repo.files["config.json"]
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo.repo_id, "config.json", revision=repo.initial, **kw)


def test_snapshot_download_into_fresh_cache(uploaded_repo, fresh_hf_cache):
    repo = uploaded_repo
    path = snapshot_download(repo.repo_id, repo_type=repo.repo_type, cache_dir=fresh_hf_cache.hub_cache)
    assert Path(path).name == repo.head
    assert read_tree(path) == repo.files

    old = snapshot_download(
        repo.repo_id, repo_type=repo.repo_type, revision=repo.folder_commit, cache_dir=fresh_hf_cache.hub_cache
    )
    assert read_tree(old)["config.json"] == repo.config_v1


def test_range_requests(hub_server, uploaded_repo):
    repo = uploaded_repo
    binary = repo.files["weights/model.safetensors"]
    url = hf_hub_url(repo.repo_id, "weights/model.safetensors", repo_type=repo.repo_type)
    assert url.startswith(hub_server.url)

    head = httpx2.head(url)
    assert head.status_code == 200
    assert head.headers["X-Repo-Commit"] == repo.head
    assert head.headers["Content-Length"] == head.headers["X-Linked-Size"] == str(BINARY_SIZE)
    assert head.headers["ETag"].strip('"') == head.headers["X-Linked-Etag"].strip('"') == sha256(binary)

    part = httpx2.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-1099/{BINARY_SIZE}"
    assert part.content == binary[100:1100]
    assert httpx2.get(url, headers={"Range": "bytes=-10"}).content == binary[-10:]
    assert httpx2.get(url, headers={"Range": f"bytes={BINARY_SIZE}-"}).status_code == 416

    fs = HfFileSystem(endpoint=hub_server.url, token=hub_server.token, skip_instance_cache=True)
    remote = f"{repo.fs_prefix}/weights/model.safetensors"
    assert fs.cat_file(remote, start=5000, end=5100) == binary[5000:5100]
    with fs.open(remote, "rb") as f:
        f.seek(BINARY_SIZE - 50)
        assert f.read() == binary[-50:]
    partial = [p for m, p, status in hub_server.requests if m == "GET" and status == 206]
    assert sum(p.endswith("/weights/model.safetensors") for p in partial) >= 3


# ----------------------------------------------------------------------------- offline from cache


OFFLINE_SNAPSHOT = """
import hashlib, json
from pathlib import Path
from huggingface_hub import constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

repo_id, repo_type = {repo_id!r}, {repo_type!r}
assert constants.HF_HUB_OFFLINE
path = snapshot_download(repo_id, repo_type=repo_type)
files = {{p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in Path(path).rglob("*") if p.is_file()}}
config = Path(hf_hub_download(repo_id, "config.json", repo_type=repo_type)).read_bytes().decode()
try:
    snapshot_download(repo_id + "-not-cached", repo_type=repo_type)
    missing = "downloaded?!"
except LocalEntryNotFoundError:
    missing = "LocalEntryNotFoundError"
print(json.dumps({{"endpoint": constants.ENDPOINT, "path": path, "files": files, "config": config, "missing": missing}}))
"""


def test_offline_snapshot_from_cache(hub_server, uploaded_repo, fresh_hf_cache, run_offline):
    repo = uploaded_repo
    online = snapshot_download(repo.repo_id, repo_type=repo.repo_type, cache_dir=fresh_hf_cache.hub_cache)

    code = OFFLINE_SNAPSHOT.format(repo_id=repo.repo_id, repo_type=repo.repo_type)
    proc = run_offline(code, hf_home=fresh_hf_cache.home)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["endpoint"] != hub_server.url  # the subprocess could not have reached the fake hub
    assert result["path"] == online
    assert result["files"] == {path: sha256(data) for path, data in repo.files.items()}
    assert result["config"].encode() == repo.files["config.json"]
    assert result["missing"] == "LocalEntryNotFoundError"


def test_offline_run_fails_without_cache(hub_api, hub_repo_id, fresh_hf_cache, run_offline):
    """Guards the offline helper: a repo that exists on the hub but not in the cache stays out of reach."""
    hub_api.create_repo(hub_repo_id)
    code = f"from huggingface_hub import snapshot_download; snapshot_download({hub_repo_id!r})"
    proc = run_offline(code, hf_home=fresh_hf_cache.home, check=False)
    assert proc.returncode != 0 and "LocalEntryNotFoundError" in proc.stderr


# ----------------------------------------------------------------------------- datasets.push_to_hub


def test_dataset_push_to_hub_then_load(hub_server, hub_repo_id, fresh_hf_cache):
    import datasets  # noqa: PLC0415 - heavy import, only here

    train = datasets.Dataset.from_dict({"obs": [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], "reward": [0.5, -1.0, 2.0]})
    test = datasets.Dataset.from_dict({"obs": [[9.0, 9.0]], "reward": [7.0]})
    train.push_to_hub(hub_repo_id)
    test.push_to_hub(hub_repo_id, split="test")  # second push: reads back README.md, updates it

    blobs = hub_server.repo_files(hub_repo_id, "dataset")
    parquet = sorted(p for p in blobs if p.endswith(".parquet"))
    assert [p.split("/")[1].split("-")[0] for p in parquet] == ["test", "train"]
    assert all(blobs[p].lfs for p in parquet)

    local = snapshot_download(hub_repo_id, repo_type="dataset", cache_dir=fresh_hf_cache.hub_cache)
    assert "splits:" in (Path(local) / "README.md").read_text()
    loaded = datasets.load_dataset(local, cache_dir=str(fresh_hf_cache.datasets_cache))
    assert loaded["train"].to_dict() == train.to_dict()
    assert loaded["test"].to_dict() == test.to_dict()

    # datasets can also load the repo straight from the hub (HfFileSystem listing + resolve downloads).
    remote = datasets.load_dataset(hub_repo_id, split="train", cache_dir=str(fresh_hf_cache.datasets_cache))
    assert remote.to_dict() == train.to_dict()
