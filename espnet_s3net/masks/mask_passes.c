/* The CPU masking passes of espnet_s3net.masks.mask_kernels, each one pass over memory.
 *
 * Built and loaded by mask_kernels (with the system C compiler, cached per source, compiler
 * and CPU). Every pass takes contiguous arrays of n elements, the mask m as n bits (element
 * i's is bit 7 - i % 8 of byte i / 8, numpy.packbits order; 1: on, 0: off) and the number of
 * threads to split the elements over. The selects move elements as integers of the
 * element's width (16, 32 or 64 bits), so they serve every floating dtype of that width and
 * are exact: an element is either its own value, the kept one or +0.
 */
#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* elements below which a pass runs on one thread (a thread team costs more than the pass) */
#define PARALLEL_MIN_NUMEL 65536

typedef void (*range_fn)(void *a, const void *b, const void *c, int64_t lo, int64_t hi);

/* f(a, b, c, lo, hi) over [0, n): split into one contiguous range per thread, each range a
 * multiple of 64 elements (whole cache lines) except the last. */
static void run(range_fn f, void *a, const void *b, const void *c, int64_t n, int threads) {
#ifdef _OPENMP
    if (threads > 1 && n >= PARALLEL_MIN_NUMEL) {
#pragma omp parallel num_threads(threads)
        {
            int64_t teams = omp_get_num_threads(), per = ((n + teams - 1) / teams + 63) / 64 * 64;
            int64_t lo = omp_get_thread_num() * per, hi = lo + per < n ? lo + per : n;
            if (lo < hi) f(a, b, c, lo, hi);
        }
        return;
    }
#endif
    (void)threads;
    f(a, b, c, 0, n);
}

/* The statement given, for every element i in [lo, hi) of a bit mask m (lo a multiple of 8)
 * with `on` its bit (1 or 0): the whole bytes in an inner loop of eight that compilers
 * vectorise (a byte broadcast, shifted per lane), then the last hi % 8 bits. */
#define FOR_EACH_BIT(m, lo, hi, ...)                                                               \
    for (int64_t j = (lo) / 8; j < (hi) / 8; j++) {                                                \
        uint32_t byte = (m)[j];                                                                    \
        for (int k = 0; k < 8; k++) {                                                              \
            int64_t i = 8 * j + k;                                                                 \
            uint32_t on = (byte >> (7 - k)) & 1u;                                                  \
            __VA_ARGS__;                                                                           \
        }                                                                                          \
    }                                                                                              \
    for (int64_t i = (hi) / 8 * 8; i < (hi); i++) {                                                \
        uint32_t on = ((m)[i / 8] >> (7 - i % 8)) & 1u;                                            \
        __VA_ARGS__;                                                                               \
    }

/* out = m ? w : 0;  g = m ? g : 0;  w = m ? w : kept  (elements as B-bit integers; the
 * forms compilers vectorise best: the bit as an all-ones or all-zeros word and/or'ed with
 * the values, the gradient's zeros as a masked store) */
#define SELECTS(B)                                                                                 \
    static void masked_weight_range_##B(void *a, const void *b, const void *c, int64_t lo,        \
                                        int64_t hi) {                                             \
        uint##B##_t *restrict out = a;                                                             \
        const uint##B##_t *restrict w = b;                                                         \
        const uint8_t *restrict m = c;                                                             \
        FOR_EACH_BIT(m, lo, hi, out[i] = w[i] & ((uint##B##_t)0 - (uint##B##_t)on))               \
    }                                                                                              \
    static void mask_grad_range_##B(void *a, const void *b, const void *c, int64_t lo,            \
                                    int64_t hi) {                                                 \
        uint##B##_t *restrict g = a;                                                               \
        const uint8_t *restrict m = b;                                                             \
        (void)c;                                                                                   \
        FOR_EACH_BIT(m, lo, hi, g[i] = on ? g[i] : 0)                                              \
    }                                                                                              \
    static void restore_range_##B(void *a, const void *b, const void *c, int64_t lo, int64_t hi) { \
        uint##B##_t *restrict w = a;                                                               \
        const uint##B##_t *restrict kept = b;                                                      \
        const uint8_t *restrict m = c;                                                             \
        FOR_EACH_BIT(m, lo, hi, {                                                                  \
            uint##B##_t s = (uint##B##_t)0 - (uint##B##_t)on;                                      \
            w[i] = (w[i] & s) | (kept[i] & (uint##B##_t)~s);                                       \
        })                                                                                         \
    }                                                                                              \
    void masked_weight_##B(void *out, const void *w, const void *m, int64_t n, int threads) {     \
        run(masked_weight_range_##B, out, w, m, n, threads);                                       \
    }                                                                                              \
    void mask_grad_##B(void *g, const void *m, int64_t n, int threads) {                          \
        run(mask_grad_range_##B, g, m, 0, n, threads);                                             \
    }                                                                                              \
    void restore_##B(void *w, const void *kept, const void *m, int64_t n, int threads) {          \
        run(restore_range_##B, w, kept, m, n, threads);                                            \
    }

SELECTS(16)
SELECTS(32)
SELECTS(64)

/* sink += g² (float32), then g = m ? g : 0;  acc += (g w)² (float32, the product in T) */
#define SQUARES(NAME, T)                                                                           \
    static void mask_grad_with_sink_range_##NAME(void *a, const void *b, const void *c,           \
                                                 int64_t lo, int64_t hi) {                        \
        T *restrict g = a;                                                                         \
        const uint8_t *restrict m = b;                                                             \
        float *restrict sink = (float *)c;                                                         \
        FOR_EACH_BIT(m, lo, hi, {                                                                  \
            float x = (float)g[i];                                                                 \
            sink[i] += x * x;                                                                      \
            g[i] = on ? g[i] : 0;                                                                  \
        })                                                                                         \
    }                                                                                              \
    static void accumulate_taylor_range_##NAME(void *a, const void *b, const void *c, int64_t lo, \
                                               int64_t hi) {                                      \
        float *restrict acc = a;                                                                   \
        const T *restrict g = b, *restrict w = c;                                                  \
        for (int64_t i = lo; i < hi; i++) {                                                        \
            T score = g[i] * w[i];                                                                 \
            acc[i] += (float)(score * score);                                                      \
        }                                                                                          \
    }                                                                                              \
    void mask_grad_with_sink_##NAME(void *g, const void *m, void *sink, int64_t n, int threads) { \
        run(mask_grad_with_sink_range_##NAME, g, m, sink, n, threads);                             \
    }                                                                                              \
    void accumulate_taylor_##NAME(void *acc, const void *g, const void *w, int64_t n,             \
                                  int threads) {                                                  \
        run(accumulate_taylor_range_##NAME, acc, g, w, n, threads);                                \
    }

SQUARES(float32, float)
SQUARES(float64, double)
