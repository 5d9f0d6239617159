/* Dropout for float32 CPU tensors: y = keep ? x * scale : 0, with the keep mask drawn inside the kernel.

   The random bits are SplitMix64 (Steele, Lea and Flood, 2014) evaluated at counters 0, 1, 2, ...: a
   counter-based generator, so any slice of the stream can be drawn without the slices before it and a
   backward pass redraws the forward's mask from the seed alone. Each 64-bit draw holds four 16-bit uniform
   integers (element i reads the i-th uint16 of the little-endian draw array); element i is dropped when its
   integer is below `threshold` = round(p * 2**16). seqrl/models/dropout.py compiles this file on first use
   and tests/test_tt_model.py checks it against a numpy transcription of the same rule. */
#include <stdint.h>
#include <omp.h>

#define CHUNK 1024 /* elements per batch of draws: 256 draws, 2 KB on the stack */

static inline uint64_t splitmix64(uint64_t seed, uint64_t counter) {
    uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Elements [begin, end), begin a multiple of CHUNK. The draws go to a small array first: two simple loops
   vectorize, one loop that hashes and applies does not. */
static void dropout_range(const float *x, float *y, int64_t begin, int64_t end, uint64_t seed, uint32_t threshold,
                          float scale) {
    uint64_t draws[CHUNK / 4];
    const uint16_t *bits = (const uint16_t *)draws;
    for (int64_t start = begin; start < end; start += CHUNK) {
        int64_t count = end - start < CHUNK ? end - start : CHUNK;
        uint64_t first = (uint64_t)(start / 4);
        for (int j = 0; j < CHUNK / 4; j++) draws[j] = splitmix64(seed, first + j);
        for (int64_t j = 0; j < count; j++) y[start + j] = bits[j] >= threshold ? x[start + j] * scale : 0.0f;
    }
}

/* x and y: n contiguous floats; y == x is allowed. Uses the OpenMP threads of the process (torch's). */
void seqrl_dropout(const float *x, float *y, int64_t n, uint64_t seed, uint32_t threshold, float scale) {
    #pragma omp parallel if (n >= 16 * CHUNK)
    {
        int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t per_thread = ((n + threads - 1) / threads + CHUNK - 1) / CHUNK * CHUNK;
        int64_t begin = t * per_thread, end = begin + per_thread < n ? begin + per_thread : n;
        if (begin < end) dropout_range(x, y, begin, end, seed, threshold, scale);
    }
}
