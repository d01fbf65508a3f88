/*
 * edgetrain — integer layer kernels (et_layers.h; exact semantics in
 * docs/layers.md). Integer only, no allocation.
 */
#include <string.h>

#include "edgetrain/et_fixed.h"
#include "edgetrain/et_layers.h"
#include "clip_internal.h"
#include "fixed_inline.h"
#include "hot_internal.h"

/* 1 when v lies outside [lo, hi] (a compare result, no branch): one clip event of a store. */
static uint32_t et_out(int64_t v, int64_t lo, int64_t hi)
{
    return (uint32_t)(v < lo) | (uint32_t)(v > hi);
}

/*
 * saturate(round_shift(x, shift)) into [lo, hi]: the one rescale (inlined: it
 * runs per output), adding 1 to *n when the rounded value was clamped.
 */
static int64_t et_rqc(int64_t x, int shift, int64_t lo, int64_t hi, uint32_t *n)
{
    int64_t r = et_round_shift_s64_inline(x, shift);
    *n += et_out(r, lo, hi);
    return et_saturate_s64_inline(r, lo, hi);
}

/*
 * Activation loads without a branch per element: a stored byte b of an
 * unsigned format is b; of the signed format (ET_FMT_BN_OUT) it is
 * (b ^ 0x80) - 128.
 */
typedef struct {
    uint8_t flip;
    int32_t offset;
} et_load_t;

static et_load_t et_loader(uint8_t fmt)
{
    et_load_t l;
    l.flip = fmt == ET_FMT_BN_OUT ? 0x80u : 0u;
    l.offset = fmt == ET_FMT_BN_OUT ? 128 : 0;
    return l;
}

#define ET_LOAD(ld, b) ((int32_t)(uint8_t)((b) ^ (ld).flip) - (ld).offset)

/*
 * The MAC loops read the signed format through an int8_t pointer instead: the
 * same value (int8_t is two's complement), one plain loop per format that gcc
 * vectorises without the flip and the offset.
 */
static int et_signed_in(uint8_t fmt)
{
    return fmt == ET_FMT_BN_OUT;
}

/* sum of w[j] x[j], the activations x of the signed (sgn) or an unsigned format: the portable loop */
ET_HOT_INLINE int32_t et_dot_c(const int8_t *w, const uint8_t *x, uint32_t n, int sgn)
{
    int32_t acc = 0;
    uint32_t j;
    if (sgn) {
        const int8_t *xs = (const int8_t *)(const void *)x;
        for (j = 0; j < n; j++) {
            acc += (int32_t)w[j] * xs[j];
        }
    } else {
        for (j = 0; j < n; j++) {
            acc += (int32_t)w[j] * x[j];
        }
    }
    return acc;
}

/*
 * The dot products of four weight rows (w, w + m, w + 2m, w + 3m) with one
 * activation vector x of n bytes into acc[0..3]: each activation is loaded
 * once for four output channels. The same products and sums as et_dot_c per row.
 */
ET_HOT_INLINE void et_dot4_c(const int8_t *w, uint32_t m, const uint8_t *x, uint32_t n, int sgn, int32_t *acc)
{
    const int8_t *w1 = w + m;
    const int8_t *w2 = w1 + m;
    const int8_t *w3 = w2 + m;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    uint32_t j;
    if (sgn) {
        const int8_t *xs = (const int8_t *)(const void *)x;
        for (j = 0; j < n; j++) {
            int32_t v = xs[j];
            a0 += w[j] * v;
            a1 += w1[j] * v;
            a2 += w2[j] * v;
            a3 += w3[j] * v;
        }
    } else {
        for (j = 0; j < n; j++) {
            int32_t v = x[j];
            a0 += w[j] * v;
            a1 += w1[j] * v;
            a2 += w2[j] * v;
            a3 += w3[j] * v;
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32) && defined(__ARM_FEATURE_UNALIGNED) && \
    defined(__GNUC__) && !defined(ET_NO_DSP)
/*
 * Cortex-M4/M7/M33 (v7E-M, v8-M with the DSP extension): four bytes per load
 * (unaligned word loads), widened to two int16 pairs each by SXTB16/UXTB16
 * (bytes 0 and 2; bytes 1 and 3 after a shift by 8), two SMLADs per four
 * MACs (__builtin_memcpy: a plain load even under -ffreestanding, where
 * memcpy is a call). The same products as et_dot_c summed in another order into an int32
 * that wraps like the C loop's: the integer result is identical (while
 * |sum| < 2^31, which the C loop also needs).
 */
#include <arm_acle.h>

#define ET_DOT_DSP 1
#else
#define ET_DOT_DSP 0
#endif

#if ET_DOT_DSP
static uint32_t et_load4(const void *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static int32_t et_dot(const int8_t *w, const uint8_t *x, uint32_t n, int sgn)
{
    int32_t acc = 0;
    uint32_t j = 0;
    uint32_t n4 = n & ~3u;
    if (sgn) {
        for (; j < n4; j += 4) {
            uint32_t wv = et_load4(w + j);
            uint32_t xv = et_load4(x + j);
            acc = __smlad(__sxtb16((int32_t)wv), __sxtb16((int32_t)xv), acc);
            acc = __smlad(__sxtb16((int32_t)(wv >> 8)), __sxtb16((int32_t)(xv >> 8)), acc);
        }
    } else {
        for (; j < n4; j += 4) {
            uint32_t wv = et_load4(w + j);
            uint32_t xv = et_load4(x + j);
            acc = __smlad(__sxtb16((int32_t)wv), (int32_t)__uxtb16(xv), acc);
            acc = __smlad(__sxtb16((int32_t)(wv >> 8)), (int32_t)__uxtb16(xv >> 8), acc);
        }
    }
    return j < n ? acc + et_dot_c(w + j, x + j, n - j, sgn) : acc;
}

/* One SMLAD step of et_dot4 for row r: the pairs of bytes 0, 2 and 1, 3 of four weights against xl, xh. */
#define ET_SMLAD4(r, wp, xl, xh)                                                                   \
    do {                                                                                           \
        uint32_t wv_ = et_load4((wp) + j);                                                         \
        a[r] = __smlad(__sxtb16((int32_t)wv_), (xl), a[r]);                                        \
        a[r] = __smlad(__sxtb16((int32_t)(wv_ >> 8)), (xh), a[r]);                                 \
    } while (0)

/* et_dot4_c with SMLAD: four activation bytes loaded and widened once for four weight rows. */
static void et_dot4(const int8_t *w, uint32_t m, const uint8_t *x, uint32_t n, int sgn, int32_t *acc)
{
    const int8_t *w1 = w + m;
    const int8_t *w2 = w1 + m;
    const int8_t *w3 = w2 + m;
    int32_t a[4] = {0, 0, 0, 0};
    uint32_t j = 0;
    uint32_t n4 = n & ~3u;
    if (sgn) {
        for (; j < n4; j += 4) {
            uint32_t xv = et_load4(x + j);
            int32_t xl = __sxtb16((int32_t)xv);
            int32_t xh = __sxtb16((int32_t)(xv >> 8));
            ET_SMLAD4(0, w, xl, xh);
            ET_SMLAD4(1, w1, xl, xh);
            ET_SMLAD4(2, w2, xl, xh);
            ET_SMLAD4(3, w3, xl, xh);
        }
    } else {
        for (; j < n4; j += 4) {
            uint32_t xv = et_load4(x + j);
            int32_t xl = (int32_t)__uxtb16(xv);
            int32_t xh = (int32_t)__uxtb16(xv >> 8);
            ET_SMLAD4(0, w, xl, xh);
            ET_SMLAD4(1, w1, xl, xh);
            ET_SMLAD4(2, w2, xl, xh);
            ET_SMLAD4(3, w3, xl, xh);
        }
    }
    if (j < n) {
        int32_t t[4];
        et_dot4_c(w + j, m, x + j, n - j, sgn, t);
        a[0] += t[0];
        a[1] += t[1];
        a[2] += t[2];
        a[3] += t[3];
    }
    acc[0] = a[0];
    acc[1] = a[1];
    acc[2] = a[2];
    acc[3] = a[3];
}
#endif

/*
 * The backward inner loops add scalars times rows to an int32 row: acc[j] += d x[j] (one row) and
 * acc[j] += da xa[j] + db xb[j] (two rows whose scalars are both non-zero), j < n. x is a weight row
 * (signed) or activations of the signed (sgn) or an unsigned format; d is an int8 gradient. Every
 * product fits in int16 (|d| <= 128, |x| <= 255: at most 32,640 in magnitude), which the casts tell
 * the compiler: on x86 the loops multiply int16 lanes (pmullw/pmulhw; without them gcc emulates
 * 32-bit multiplies in the paired loop on unsigned activations). The portable loops below are the
 * reference and the DSP loops' tail.
 */
ET_HOT_INLINE void et_axpy_c(int32_t *acc, int32_t d, const uint8_t *x, uint32_t n, int sgn)
{
    int16_t d16 = (int16_t)d;
    uint32_t j;
    if (sgn) {
        const int8_t *xs = (const int8_t *)(const void *)x;
        for (j = 0; j < n; j++) {
            acc[j] += (int16_t)(d16 * xs[j]);
        }
    } else {
        for (j = 0; j < n; j++) {
            acc[j] += (int16_t)(d16 * x[j]);
        }
    }
}

ET_HOT_INLINE void et_axpy2_c(int32_t *acc, const uint8_t *xa, int32_t da, const uint8_t *xb, int32_t db,
                              uint32_t n, int sgn)
{
    int16_t a16 = (int16_t)da;
    int16_t b16 = (int16_t)db;
    uint32_t j;
    if (sgn) {
        const int8_t *as = (const int8_t *)(const void *)xa;
        const int8_t *bs = (const int8_t *)(const void *)xb;
        for (j = 0; j < n; j++) {
            acc[j] += a16 * (int16_t)as[j] + b16 * (int16_t)bs[j];
        }
    } else {
        for (j = 0; j < n; j++) {
            acc[j] += a16 * (int16_t)xa[j] + b16 * (int16_t)xb[j];
        }
    }
}

#if ET_DOT_DSP
/*
 * The DSP backward loops: four bytes of a row per word load, widened to the int16 pairs of bytes
 * 0, 2 and 1, 3 by SXTB16/UXTB16, then multiplied by the int16 halves of a packed scalar word
 * (SMLABB/SMLATB: bottom or top half of the row pair times the bottom half, the first scalar;
 * SMLABT/SMLATT: times the top half, the second): one load and one store of the int32 accumulator
 * per two products in et_axpy2, where the plain loop has one per product. The same products added
 * to the same int32 (SMLAxy's accumulate wraps like the C loop's add; no sum here comes near 2^31).
 */
#define ET_AXPY_LOOP(EXT)                                                                          \
    for (; j < n4; j += 4) {                                                                       \
        uint32_t v_ = et_load4(x + j);                                                             \
        int32_t lo_ = (int32_t)EXT(v_);                                                            \
        int32_t hi_ = (int32_t)EXT(v_ >> 8);                                                       \
        acc[j] = __smlabb(lo_, d, acc[j]);                                                         \
        acc[j + 1] = __smlabb(hi_, d, acc[j + 1]);                                                 \
        acc[j + 2] = __smlatb(lo_, d, acc[j + 2]);                                                 \
        acc[j + 3] = __smlatb(hi_, d, acc[j + 3]);                                                 \
    }

#define ET_AXPY2_LOOP(EXT)                                                                         \
    for (; j < n4; j += 4) {                                                                       \
        uint32_t va_ = et_load4(xa + j);                                                           \
        uint32_t vb_ = et_load4(xb + j);                                                           \
        int32_t al_ = (int32_t)EXT(va_);                                                           \
        int32_t ah_ = (int32_t)EXT(va_ >> 8);                                                      \
        int32_t bl_ = (int32_t)EXT(vb_);                                                           \
        int32_t bh_ = (int32_t)EXT(vb_ >> 8);                                                      \
        acc[j] = __smlabt(bl_, dd, __smlabb(al_, dd, acc[j]));                                     \
        acc[j + 1] = __smlabt(bh_, dd, __smlabb(ah_, dd, acc[j + 1]));                             \
        acc[j + 2] = __smlatt(bl_, dd, __smlatb(al_, dd, acc[j + 2]));                             \
        acc[j + 3] = __smlatt(bh_, dd, __smlatb(ah_, dd, acc[j + 3]));                             \
    }

#define ET_SXT(v) __sxtb16((int32_t)(v))
#define ET_UXT(v) __uxtb16(v)

static void et_axpy(int32_t *acc, int32_t d, const uint8_t *x, uint32_t n, int sgn)
{
    uint32_t j = 0;
    uint32_t n4 = n & ~3u;
    if (sgn) {
        ET_AXPY_LOOP(ET_SXT)
    } else {
        ET_AXPY_LOOP(ET_UXT)
    }
    if (j < n) {
        et_axpy_c(acc + j, d, x + j, n - j, sgn);
    }
}

static void et_axpy2(int32_t *acc, const uint8_t *xa, int32_t da, const uint8_t *xb, int32_t db, uint32_t n, int sgn)
{
    int32_t dd = (int32_t)(((uint32_t)da & 0xFFFFu) | ((uint32_t)db << 16)); /* (da, db) as an int16 pair */
    uint32_t j = 0;
    uint32_t n4 = n & ~3u;
    if (sgn) {
        ET_AXPY2_LOOP(ET_SXT)
    } else {
        ET_AXPY2_LOOP(ET_UXT)
    }
    if (j < n) {
        et_axpy2_c(acc + j, xa + j, da, xb + j, db, n - j, sgn);
    }
}
#else
#define et_dot et_dot_c
#define et_dot4 et_dot4_c
#define et_axpy et_axpy_c
#define et_axpy2 et_axpy2_c
#endif

/*
 * acc[j] += sum over o < no of d[o] w[o * stride + j], j < n (w: int8 weight rows): the rows whose
 * d is non-zero two at a time (et_axpy2), an odd one alone, zero ones skipped (ReLU and max-pool
 * gradients are mostly zero). Integer sums: the grouping does not change them.
 */
ET_HOT_INLINE void et_grad_rows(int32_t *acc, const int8_t *w, uint32_t stride, const int8_t *d, uint32_t no,
                                uint32_t n)
{
    const uint8_t *wp = NULL;
    int32_t dp = 0;
    uint32_t o;
    for (o = 0; o < no; o++) {
        int32_t v = d[o];
        const uint8_t *wr;
        if (v == 0) {
            continue;
        }
        wr = (const uint8_t *)(const void *)(w + o * stride);
        if (wp == NULL) {
            wp = wr;
            dp = v;
            continue;
        }
        et_axpy2(acc, wp, dp, wr, v, n, 1);
        wp = NULL;
    }
    if (wp != NULL) {
        et_axpy(acc, dp, wp, n, 1);
    }
}

#if ET_HOST_WIDE
/*
 * et_grad_rows over the rows whose bit is set in nz (bit o of word o / 64: d[o] != 0), found with
 * ctz instead of testing every d[o]: the blocked input gradient visits each output pixel's gradient
 * once per kernel tap and channel block, so its non-zero rows are listed once per call
 * (et_grad_nz_masks). The same rows paired in the same order as et_grad_rows.
 */
ET_HOT_INLINE void et_grad_rows_nz(int32_t *acc, const int8_t *w, uint32_t stride, const int8_t *d,
                                   const uint64_t *nz, uint32_t words, uint32_t n)
{
    const uint8_t *wp = NULL;
    int32_t dp = 0;
    uint32_t k;
    for (k = 0; k < words; k++) {
        uint64_t bits = nz[k];
        while (bits != 0) {
            uint32_t o = k * 64u + (uint32_t)__builtin_ctzll(bits);
            const uint8_t *wr = (const uint8_t *)(const void *)(w + o * stride);
            bits &= bits - 1u;
            if (wp == NULL) {
                wp = wr;
                dp = d[o];
                continue;
            }
            et_axpy2(acc, wp, dp, wr, d[o], n, 1);
            wp = NULL;
        }
    }
    if (wp != NULL) {
        et_axpy(acc, dp, wp, n, 1);
    }
}

/* nz[p * words + k], bit b: dz[p * no + 64 k + b] != 0, for the pix output pixels of no channels. */
ET_HOT_INLINE void et_grad_nz_masks(const int8_t *dz, uint32_t pix, uint32_t no, uint32_t words, uint64_t *nz)
{
    uint32_t p, o;
    for (p = 0; p < pix; p++) {
        const int8_t *dr = dz + p * no;
        uint64_t *m = nz + p * words;
        for (o = 0; o < words; o++) {
            m[o] = 0;
        }
        for (o = 0; o < no; o++) {
            m[o >> 6] |= (uint64_t)(dr[o] != 0) << (o & 63u);
        }
    }
}

#define ET_GRAD_NZ_WORDS 2048 /* 16 KiB of masks on the host's stack: e.g. 1,024 pixels of 128 channels */
#endif

/* LSB exponent of an activation format (input of a MAC layer). */
static int et_lsb(uint8_t fmt)
{
    et_format_t f;
    return et_format_get(fmt, &f) == ET_OK ? f.lsb_exp : 0;
}

static et_status_t et_expect(const et_layer_t *layer, uint8_t kind)
{
    et_status_t st;
    if (layer == NULL || layer->kind != kind) {
        return ET_ERR_ARG;
    }
    st = et_layer_check(layer);
    return st;
}

/* ---- ReLU ----------------------------------------------------------------- */

/* The ReLU requantize; *act += 1 when the value is clamped at 255 (0 for z < 0 is the ReLU, not a clip). */
static uint8_t et_relu_q(int32_t z, uint32_t *act)
{
    int64_t r = et_round_shift_s64_inline(z, 5);
    *act += (uint32_t)(r > 255);
    return (uint8_t)et_saturate_s64_inline(r, 0, 255);
}

et_status_t et_relu_forward_n(const int16_t *z, uint8_t *a, uint32_t n, uint32_t *act)
{
    uint32_t i;
    uint32_t c = 0;
    if (z == NULL || a == NULL || n == 0) {
        return ET_ERR_ARG;
    }
    for (i = 0; i < n; i++) {
        a[i] = et_relu_q(z[i], &c);
    }
    *act += c;
    return ET_OK;
}

et_status_t et_relu_forward(const int16_t *z, uint8_t *a, uint32_t n)
{
    uint32_t act = 0;
    return et_relu_forward_n(z, a, n, &act);
}

et_status_t et_relu_backward(const uint8_t *a, const int8_t *da, int8_t *dz, uint32_t n)
{
    uint32_t i;
    if (a == NULL || da == NULL || dz == NULL || n == 0) {
        return ET_ERR_ARG;
    }
    for (i = 0; i < n; i++) {
        int8_t v = da[i]; /* loaded unconditionally: a select, no branch (gcc vectorises it) */
        dz[i] = (uint8_t)(a[i] - 1u) < 254u ? v : 0; /* 0 < a < 255: a - 1 in 0..253 */
    }
    return ET_OK;
}

/* ---- shared tail of conv/dense forward ----------------------------------- */

/*
 * The per-output requantize, prepared once per call. z = saturate16(
 * saturate16(round_shift(acc, shift)) + bias), then the ReLU's requantize
 * when the layer has one.
 *
 * The 32-bit path: every valid layer has 1 <= shift <= 18 (alpha_shift in
 * [0, 15], input LSB 2^-8, 2^-7 or 2^-6) and |acc| <= fan * 128 * xmax
 * (|w| <= 128; xmax = 255 for the unsigned formats, 128 for the signed one;
 * fan <= ET_MAX_FAN = 65535 gives at most 2,139,062,400). When
 * bound + 2^(shift-1) <= INT32_MAX, round_shift(acc, shift) is
 * (acc + 2^(shift-1) - (acc < 0)) >> shift in int32: the floor quotient of
 * acc + half rounds a tie up for acc >= 0, and of acc + half - 1 rounds it
 * down (away from zero) for acc < 0, the rounding rule; neither sum
 * overflows. Everything after it is int32 (the bias add of two int16, the
 * ReLU's shift by 5 of an int16). Otherwise (no valid layer gets there) the
 * 64-bit rule of fixed_inline.h.
 */
/* The forward rescale shift: acc at 2^(-7 + in_lsb) times 2^-alpha_shift into 2^-12. */
static int et_forward_shift(const et_layer_t *l)
{
    return l->alpha_shift - 5 - et_lsb(l->in.fmt);
}

/* It runs once per output and counts into the caller's locals: inlined, they stay in registers. */
#if defined(__GNUC__)
#define ET_ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define ET_ALWAYS_INLINE inline
#endif

typedef struct {
    int shift;    /* the rescale shift */
    int32_t half; /* 2^(shift-1) - 1 when fast: the rounding offset for acc < 0 is half, for acc >= 0 half + 1 */
    int fast;     /* 1: the 32-bit path is exact for every accumulator of the layer */
    int relu;     /* the layer's activation is ReLU (uint8 out), else int16 out */
} et_rq_t;

static et_rq_t et_rq_prepare(const et_layer_t *l, uint32_t fan)
{
    et_rq_t q;
    uint64_t xmax = et_signed_in(l->in.fmt) ? 128u : 255u;
    q.shift = et_forward_shift(l);
    q.relu = l->activation == ET_ACT_RELU;
    q.fast = q.shift >= 1 && q.shift <= 30 &&
             (uint64_t)fan * 128u * xmax + (UINT64_C(1) << (q.shift - 1)) <= (uint64_t)INT32_MAX;
    q.half = q.fast ? (int32_t)((UINT32_C(1) << (q.shift - 1)) - 1u) : 0;
    return q;
}

/* v clamped to [lo, hi] in int32 (compare and select, no branch at -O2). */
static int32_t et_clamp32(int32_t v, int32_t lo, int32_t hi)
{
    int32_t t = v < lo ? lo : v;
    return t > hi ? hi : t;
}

/*
 * Store one output element: alpha rescale into the bias format, add the bias,
 * activation. *pre += 1 when the rescale or the bias add clamped (one per
 * element); *act += 1 when the ReLU output clamped at 255.
 */
ET_ALWAYS_INLINE static void et_mac_store(const et_rq_t *q, int32_t acc, int16_t bias, void *out, uint32_t idx,
                                          uint32_t *pre, uint32_t *act)
{
    int32_t z;
    if (q->fast) {
        int32_t r = (acc + q->half + (int32_t)(acc >= 0)) >> q->shift;
        int32_t t = et_clamp32(r, INT16_MIN, INT16_MAX) + bias;
        z = et_clamp32(t, INT16_MIN, INT16_MAX);
        *pre += (uint32_t)(r < INT16_MIN) | (uint32_t)(r > INT16_MAX) | (uint32_t)(t != z);
    } else {
        int64_t r = et_round_shift_s64_inline(acc, q->shift);
        int64_t t = et_saturate_s64_inline(r, INT16_MIN, INT16_MAX);
        z = (int32_t)et_saturate_s64_inline(t + bias, INT16_MIN, INT16_MAX);
        *pre += et_out(r, INT16_MIN, INT16_MAX) | et_out(t + bias, INT16_MIN, INT16_MAX);
    }
    if (q->relu) {
        /* round_shift(z, 5) of an int16 in int32: (z + 16) >> 5 for z >= 0; for z < 0 it may differ
         * from the rule by one below 0, but both clamp to 0 (the ReLU, not a clip) */
        int32_t a = (z + 16) >> 5;
        *act += (uint32_t)(a > 255);
        ((uint8_t *)out)[idx] = (uint8_t)et_clamp32(a, 0, 255);
    } else {
        ((int16_t *)out)[idx] = (int16_t)z;
    }
}

/* ---- Conv2D --------------------------------------------------------------- */

/* A conv layer's geometry, read once per call (signed where the padded index arithmetic needs it). */
typedef struct {
    int32_t k, pad, ih, iw, oh, ow; /* kernel side, SAME padding, input and output height and width */
    uint32_t ic, oc, m;             /* input and output channels; m = k * k * ic, one weight row */
} et_conv_geom_t;

static et_conv_geom_t et_conv_geom(const et_layer_t *l)
{
    et_conv_geom_t g;
    g.k = l->kernel;
    g.pad = l->padding == ET_PAD_SAME ? (l->kernel - 1) / 2 : 0;
    g.ih = l->in.h;
    g.iw = l->in.w;
    g.oh = l->out.h;
    g.ow = l->out.w;
    g.ic = l->in.c;
    g.oc = l->out.c;
    g.m = (uint32_t)g.k * (uint32_t)g.k * g.ic;
    return g;
}

et_status_t et_conv2d_forward(const et_layer_t *layer, const int8_t *weights, const int16_t *bias, const void *in,
                              void *out)
{
    uint32_t pre = 0;
    uint32_t act = 0;
    return et_conv2d_forward_n(layer, weights, bias, in, out, &pre, &act);
}

/*
 * Thin convolutions (small in_c) have short kernel rows (3 bytes for a 3x3
 * kernel over one channel), so one dot product per row is mostly call and
 * loop overhead. When a whole k x k x in_c window fits in ET_WIN_MAX bytes,
 * the kernels copy it once per output pixel into a local buffer, zero where
 * SAME padding reaches outside the input (a zero byte is the value 0 in
 * every activation format, and 0 adds nothing to an integer sum), and use it
 * for all output channels: one dot product of k*k*in_c per output channel
 * in the forward pass, one contiguous run per output channel in the weight
 * gradient. Same integer sums.
 */
#define ET_WIN_MAX 128

/* The forward pass's window buffer: 4 KiB on the host (paper-cnn's 128-channel 3 x 3 windows are
 * 1,152 bytes), ET_WIN_MAX on firmware stacks; and on the host the bytes of weights per block of
 * output channels (et_conv2d_forward_n). */
#if ET_HOST_WIDE
#define ET_WIN_FWD_MAX 4096
#define ET_FWD_BLOCK 16384
#else
#define ET_WIN_FWD_MAX ET_WIN_MAX
#endif

ET_HOT_INLINE void et_window(const et_conv_geom_t *g, const uint8_t *x, int32_t oy, int32_t ox, uint8_t *win)
{
    uint32_t rowlen = (uint32_t)g->k * g->ic;
    int32_t kx0 = g->pad - ox > 0 ? g->pad - ox : 0;
    int32_t kx1 = g->iw + g->pad - ox < g->k ? g->iw + g->pad - ox : g->k;
    uint32_t lo = (uint32_t)kx0 * g->ic;
    uint32_t hi = kx1 > kx0 ? (uint32_t)kx1 * g->ic : lo;
    int32_t ky;
    uint32_t j;
    for (ky = 0; ky < g->k; ky++) {
        int32_t iy = oy + ky - g->pad;
        uint8_t *row = win + (uint32_t)ky * rowlen;
        if (iy < 0 || iy >= g->ih) {
            for (j = 0; j < rowlen; j++) {
                row[j] = 0;
            }
            continue;
        }
        {
            const uint8_t *src = x + ((uint32_t)(iy * g->iw + ox + kx0 - g->pad)) * g->ic - lo;
            if (lo != 0 || hi != rowlen) {
                for (j = 0; j < rowlen; j++) {
                    row[j] = 0;
                }
            }
            memcpy(row + lo, src + lo, hi - lo);
        }
    }
}

#if ET_HOST_WIDE
/*
 * Thin convolutions on x86-64 hosts, vectorised over output channels. et_dot4 runs along a window of
 * m bytes (9 for a 3x3 kernel over one channel), too short for vector loops, and every output is
 * stored on its own. Here the weights are transposed once per call into tap-major int32
 * (wt[j * oc + o]); each input byte, read in place (no window copy: taps that SAME padding puts
 * outside the input are skipped, as the window's zeros added nothing), multiplies eight or sixteen
 * contiguous output channels held in int32 vectors, and eight outputs are rescaled and stored at a
 * time. The same products summed in another order: the same int32 sums (|sum| < 2^31 as for
 * et_dot_c) and the same stores and counts (tests/test_layers_multiversion.py compares the builds).
 * gcc vector types: this path is built by gcc only.
 */
#define ET_THIN_LANES 8
#define ET_THIN_MAX 2048 /* m * oc: int32 entries (8 KiB) of transposed weights on the stack */

typedef int32_t et_i32x8_t __attribute__((vector_size(32)));
typedef int16_t et_i16x8_t __attribute__((vector_size(16)));
typedef uint8_t et_u8x8_t __attribute__((vector_size(8)));

static int et_thin_ok(const et_conv_geom_t *g)
{
    return g->m <= ET_WIN_MAX && g->oc % ET_THIN_LANES == 0 && g->m * g->oc <= ET_THIN_MAX;
}

/* a0 += the eight int32 at p times v (an inlined macro: no vector crosses a call) */
#define ET_THIN_MAC(a0, p, v)                                                                                         \
    do {                                                                                                               \
        et_i32x8_t w_;                                                                                                 \
        memcpy(&w_, (p), sizeof w_);                                                                                   \
        (a0) += w_ * (v);                                                                                              \
    } while (0)

/* The sums of nv * 8 output channels (nv 1 or 2) over one output pixel's in-bounds taps; wt: the
 * block's first channel. Taps kx0..kx1-1 of an in-bounds kernel row are contiguous input bytes. */
ET_HOT_INLINE void et_thin_sums(const et_conv_geom_t *g, const int32_t *wt, const uint8_t *x, int32_t oy, int32_t ox,
                                int sgn, int nv, et_i32x8_t *acc)
{
    uint32_t rowlen = (uint32_t)g->k * g->ic;
    uint32_t oc = g->oc;
    int32_t kx0 = g->pad - ox > 0 ? g->pad - ox : 0;
    int32_t kx1 = g->iw + g->pad - ox < g->k ? g->iw + g->pad - ox : g->k;
    uint32_t lo = (uint32_t)kx0 * g->ic;
    uint32_t n = kx1 > kx0 ? (uint32_t)(kx1 - kx0) * g->ic : 0u;
    et_i32x8_t a0 = {0, 0, 0, 0, 0, 0, 0, 0};
    et_i32x8_t a1 = a0;
    int32_t ky;
    uint32_t j;
    for (ky = 0; ky < g->k; ky++) {
        int32_t iy = oy + ky - g->pad;
        const uint8_t *src;
        const int32_t *w;
        if (iy < 0 || iy >= g->ih) {
            continue;
        }
        src = x + ((uint32_t)(iy * g->iw + ox + kx0 - g->pad)) * g->ic; /* tap lo */
        w = wt + ((uint32_t)ky * rowlen + lo) * oc;
        for (j = 0; j < n; j++, w += oc) {
            int32_t v = sgn ? (int32_t)(int8_t)src[j] : (int32_t)src[j];
            ET_THIN_MAC(a0, w, v);
            if (nv == 2) {
                ET_THIN_MAC(a1, w + ET_THIN_LANES, v);
            }
        }
    }
    acc[0] = a0;
    acc[1] = a1;
}

/* et_thin_sums for two neighbouring output pixels (ox, ox + 1) whose taps all lie inside the input:
 * each weight vector loaded once for both; acc[0..1] the first pixel's, acc[2..3] the second's. */
ET_HOT_INLINE void et_thin_sums2(const et_conv_geom_t *g, const int32_t *wt, const uint8_t *x, int32_t oy, int32_t ox,
                                 int sgn, int nv, et_i32x8_t *acc)
{
    uint32_t rowlen = (uint32_t)g->k * g->ic;
    uint32_t oc = g->oc;
    uint32_t ic = g->ic;
    uint32_t stride = (uint32_t)g->iw * g->ic;
    const uint8_t *src = x + ((uint32_t)((oy - g->pad) * g->iw + ox - g->pad)) * g->ic;
    const int32_t *w = wt;
    et_i32x8_t a0 = {0, 0, 0, 0, 0, 0, 0, 0};
    et_i32x8_t a1 = a0;
    et_i32x8_t b0 = a0;
    et_i32x8_t b1 = a0;
    int32_t ky;
    uint32_t j;
    for (ky = 0; ky < g->k; ky++, src += stride) {
        for (j = 0; j < rowlen; j++, w += oc) {
            int32_t u = sgn ? (int32_t)(int8_t)src[j] : (int32_t)src[j];
            int32_t v = sgn ? (int32_t)(int8_t)src[j + ic] : (int32_t)src[j + ic];
            et_i32x8_t w0;
            memcpy(&w0, w, sizeof w0);
            a0 += w0 * u;
            b0 += w0 * v;
            if (nv == 2) {
                et_i32x8_t w1;
                memcpy(&w1, w + ET_THIN_LANES, sizeof w1);
                a1 += w1 * u;
                b1 += w1 * v;
            }
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = b0;
    acc[3] = b1;
}

/* One block of nv * 8 output channels for npix (1 or 2) output pixels: each combination of the
 * constant arguments gets its own inlined copy of the loops. */
ET_HOT_INLINE void et_thin_block(const et_conv_geom_t *g, const int32_t *wt, const uint8_t *x, int32_t oy, int32_t ox,
                                 int sgn, int nv, int npix, et_i32x8_t *acc)
{
    if (npix == 2) {
        if (nv == 2) {
            sgn ? et_thin_sums2(g, wt, x, oy, ox, 1, 2, acc) : et_thin_sums2(g, wt, x, oy, ox, 0, 2, acc);
        } else {
            sgn ? et_thin_sums2(g, wt, x, oy, ox, 1, 1, acc) : et_thin_sums2(g, wt, x, oy, ox, 0, 1, acc);
        }
    } else if (nv == 2) {
        sgn ? et_thin_sums(g, wt, x, oy, ox, 1, 2, acc) : et_thin_sums(g, wt, x, oy, ox, 0, 2, acc);
    } else {
        sgn ? et_thin_sums(g, wt, x, oy, ox, 1, 1, acc) : et_thin_sums(g, wt, x, oy, ox, 0, 1, acc);
    }
}

/* Rescale and store eight outputs: et_mac_store's fast path on eight lanes (compare results are
 * -1 or 0 per lane; a select is (b & m) | (a & ~m)). The clip counts are kept per lane in *pre and
 * *act (negated: a lane subtracts its -1s) and summed once per call. */
ET_HOT_INLINE void et_thin_store(const et_rq_t *q, const et_i32x8_t *ap, const int16_t *bias, void *out, uint32_t idx,
                                 et_i32x8_t *pre, et_i32x8_t *act)
{
    const et_i32x8_t lo = {INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN, INT16_MIN};
    const et_i32x8_t hi = {INT16_MAX, INT16_MAX, INT16_MAX, INT16_MAX, INT16_MAX, INT16_MAX, INT16_MAX, INT16_MAX};
    et_i32x8_t a = *ap;
    et_i16x8_t b16;
    et_i32x8_t r;
    et_i32x8_t m_lo;
    et_i32x8_t m_hi;
    et_i32x8_t t;
    et_i32x8_t z;
    memcpy(&b16, bias, sizeof b16);
    r = (a + q->half - (a >= 0)) >> q->shift; /* (a >= 0) is -1 where true */
    m_lo = r < lo;
    m_hi = r > hi;
    t = (lo & m_lo) | (hi & m_hi) | (r & ~(m_lo | m_hi));
    t += __builtin_convertvector(b16, et_i32x8_t);
    z = (lo & (t < lo)) | (hi & (t > hi)) | (t & ~((t < lo) | (t > hi)));
    *pre += m_lo | m_hi | (t != z);
    if (q->relu) {
        const et_i32x8_t cap = {255, 255, 255, 255, 255, 255, 255, 255};
        et_i32x8_t v = (z + 16) >> 5; /* as in et_mac_store */
        et_i32x8_t over = v > cap;
        et_i16x8_t v16;
        uint8_t *o8 = (uint8_t *)out + idx;
        et_u8x8_t o8v;
        v = (cap & over) | (v & ~over & ~(v < 0));
        *act += over;
        v16 = __builtin_convertvector(v, et_i16x8_t);
        o8v = __builtin_convertvector(v16, et_u8x8_t);
        memcpy(o8, &o8v, sizeof o8v);
    } else {
        et_i16x8_t o16 = __builtin_convertvector(z, et_i16x8_t);
        memcpy((int16_t *)out + idx, &o16, sizeof o16);
    }
}

/* The clip counts of a call: per lane (negated, from the vector stores) and as plain counts. */
typedef struct {
    et_i32x8_t pre_v;
    et_i32x8_t act_v;
    uint32_t pre;
    uint32_t act;
} et_thin_counts_t;

ET_HOT_INLINE void et_thin_out(const et_rq_t *q, const et_i32x8_t *a, const int16_t *bias, void *out, uint32_t idx,
                               et_thin_counts_t *n)
{
    uint32_t k;
    if (q->fast) {
        et_thin_store(q, a, bias, out, idx, &n->pre_v, &n->act_v);
        return;
    }
    for (k = 0; k < ET_THIN_LANES; k++) {
        et_mac_store(q, (*a)[k], bias[k], out, idx + k, &n->pre, &n->act);
    }
}

/* All output channels of npix (1 or 2) output pixels, blocks of 16 channels while 16 are left. */
ET_HOT_INLINE void et_thin_pixels(const et_conv_geom_t *g, const et_rq_t *q, const int32_t *wt, const int16_t *bias,
                                  const uint8_t *x, void *out, int32_t oy, int32_t ox, int sgn, int npix,
                                  et_thin_counts_t *n)
{
    uint32_t base = (uint32_t)(oy * g->ow + ox) * g->oc;
    uint32_t o;
    int p;
    for (o = 0; o < g->oc; o += 2 * ET_THIN_LANES) {
        et_i32x8_t acc[4];
        int nv = g->oc - o >= 2 * ET_THIN_LANES ? 2 : 1;
        et_thin_block(g, wt + o, x, oy, ox, sgn, nv, npix, acc);
        for (p = 0; p < npix; p++) {
            uint32_t at = base + (uint32_t)p * g->oc + o;
            et_thin_out(q, &acc[2 * p], bias + o, out, at, n);
            if (nv == 2) {
                et_thin_out(q, &acc[2 * p + 1], bias + o + ET_THIN_LANES, out, at + ET_THIN_LANES, n);
            }
        }
    }
}

ET_HOT static void et_conv2d_forward_thin(const et_conv_geom_t *gp, const et_rq_t *qp, const int8_t *weights,
                                          const int16_t *bias, const uint8_t *x, void *out, int sgn, uint32_t *pre,
                                          uint32_t *act)
{
    /* local copies: the stores to out may alias anything the pointers reach, locals stay in registers */
    const et_conv_geom_t geom = *gp;
    const et_rq_t rq = *qp;
    const et_conv_geom_t *g = &geom;
    const et_rq_t *q = &rq;
    int32_t wt[ET_THIN_MAX];
    uint32_t o;
    uint32_t j;
    int32_t oy;
    int32_t ox;
    uint32_t k;
    et_thin_counts_t counts = {{0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0}, 0, 0};
    for (o = 0; o < g->oc; o++) {
        for (j = 0; j < g->m; j++) {
            wt[j * g->oc + o] = weights[o * g->m + j];
        }
    }
    for (oy = 0; oy < g->oh; oy++) {
        int row_inside = oy >= g->pad && oy + g->k - g->pad <= g->ih;
        for (ox = 0; ox < g->ow; ox++) {
            if (row_inside && ox >= g->pad && ox + 1 + g->k - g->pad <= g->iw) { /* ox and ox + 1 inside */
                et_thin_pixels(g, q, wt, bias, x, out, oy, ox, sgn, 2, &counts);
                ox++;
            } else {
                et_thin_pixels(g, q, wt, bias, x, out, oy, ox, sgn, 1, &counts);
            }
        }
    }
    for (k = 0; k < ET_THIN_LANES; k++) {
        counts.pre -= (uint32_t)counts.pre_v[k];
        counts.act -= (uint32_t)counts.act_v[k];
    }
    *pre += counts.pre;
    *act += counts.act;
}
#endif

#if ET_HOST_WIDE
#define ET_LANES_MAX_M 2048 /* the largest window of the channels-in-lanes kernels below */
#endif

#if ET_HOST_VNNI
#include <immintrin.h>

/*
 * Conv forward with AVX-512 VNNI on sixteen output channels at once, for windows that fit the
 * window buffer, up to ET_LANES_MAX_M bytes, and channel counts that are multiples of 16 (paper-cnn's
 * 128-channel convs). The dot-product path reduces every output's vector of partial sums to one
 * value; here the channels are the lanes: a block of 16 weight rows is transposed once per call into
 * wt[j / 4][c][j % 4] (32 KiB on the stack at most), and per pixel each four window bytes, broadcast,
 * meet the block's 64 weight bytes in one vpdpbusd (unsigned byte times signed byte, four products
 * added into each int32 lane). vpdpbusd takes the activations as unsigned bytes: the signed format's
 * bytes are flipped to b + 128 and 128 times the row's weight sum is taken off again. The same
 * integer sums (|sum| < 2^31 as for et_dot_c) and the same stores and counts as the portable loops;
 * tests/test_layers_multiversion.py compares the builds. Intrinsics: built by gcc on x86-64 only,
 * run only where et_host_vnni() says the CPU has VNNI.
 */
__attribute__((target("arch=x86-64-v4,avx512vnni"))) static void
et_conv2d_forward_vnni(const et_conv_geom_t *g, const et_rq_t *q, const int8_t *weights, const int16_t *bias,
                       const uint8_t *x, void *out, int sgn, uint32_t *npre, uint32_t *nact)
{
    int8_t wt[ET_LANES_MAX_M * 16];
    uint8_t win[ET_LANES_MAX_M];
    int32_t corr[16];
    int32_t sums[16];
    uint32_t m4 = (g->m + 3u) & ~3u;
    uint32_t o0, c, j;
    int32_t oy, ox;
    memset(win + g->m, 0, m4 - g->m); /* read against zero weights: any defined bytes would do */
    for (o0 = 0; o0 < g->oc; o0 += 16) {
        for (c = 0; c < 16; c++) {
            const int8_t *wr = weights + (o0 + c) * g->m;
            int8_t tail[4] = {0, 0, 0, 0};
            int32_t s = 0;
            for (j = 0; j < g->m; j++) {
                s += wr[j];
            }
            corr[c] = sgn ? 128 * s : 0;
            for (j = 0; j + 4u <= g->m; j += 4u) {
                memcpy(wt + j * 16u + c * 4u, wr + j, 4);
            }
            if (j < m4) {
                memcpy(tail, wr + j, g->m - j);
                memcpy(wt + j * 16u + c * 4u, tail, 4);
            }
        }
        for (oy = 0; oy < g->oh; oy++) {
            for (ox = 0; ox < g->ow; ox++) {
                uint32_t base = (uint32_t)(oy * g->ow + ox) * g->oc + o0;
                __m512i a[4];
                et_window(g, x, oy, ox, win);
                if (sgn) {
                    for (j = 0; j < g->m; j++) {
                        win[j] ^= 0x80u;
                    }
                }
                a[0] = a[1] = a[2] = a[3] = _mm512_setzero_si512();
                for (j = 0; j + 16u <= m4; j += 16u) { /* four chains: vpdpbusd's latency is several cycles */
                    uint32_t u[4];
                    memcpy(u, win + j, 16);
                    for (c = 0; c < 4; c++) {
                        a[c] = _mm512_dpbusd_epi32(a[c], _mm512_set1_epi32((int)u[c]),
                                                   _mm512_loadu_si512(wt + (j + 4u * c) * 16u));
                    }
                }
                for (c = 0; j < m4; j += 4u, c++) {
                    uint32_t u0;
                    memcpy(&u0, win + j, 4);
                    a[c] = _mm512_dpbusd_epi32(a[c], _mm512_set1_epi32((int)u0), _mm512_loadu_si512(wt + j * 16u));
                }
                _mm512_storeu_si512(sums, _mm512_add_epi32(_mm512_add_epi32(a[0], a[1]), _mm512_add_epi32(a[2], a[3])));
                for (c = 0; c < 16; c++) {
                    et_mac_store(q, sums[c] - corr[c], bias[o0 + c], out, base + c, npre, nact);
                }
            }
        }
    }
}
#endif

#if ET_HOST_LANES
#if !ET_HOST_VNNI
#include <immintrin.h>
#endif

/*
 * The same channels-in-lanes scheme for CPUs with AVX2 and no VNNI: eight output channels per
 * vector. The block's weight rows are widened to int16 and transposed once per call into
 * wt[j / 2][c][j % 2] (32 KiB on the stack at most); per pixel the window is widened too (zero or
 * sign extension, as the portable loops read it), and each two window values, broadcast, meet the
 * block's sixteen weights in one vpmaddwd (two int16 products added into each int32 lane). Exact:
 * every pair sum is below 2^17 and every total below 2^31, as for et_dot_c. The same stores and
 * counts as the portable loops; tests/test_layers_multiversion.py compares the builds (-DET_NO_VNNI
 * and valgrind's CPU take this kernel; -DET_NO_LANES leaves it out).
 */
__attribute__((target("avx2"))) static void et_conv2d_forward_lanes(const et_conv_geom_t *g, const et_rq_t *q,
                                                                    const int8_t *weights, const int16_t *bias,
                                                                    const uint8_t *x, void *out, int sgn,
                                                                    uint32_t *npre, uint32_t *nact)
{
    int16_t wt[ET_LANES_MAX_M * 8];
    int16_t w16[ET_LANES_MAX_M];
    uint8_t win[ET_LANES_MAX_M];
    int32_t sums[8];
    uint32_t m2 = (g->m + 1u) & ~1u;
    uint32_t pairs = m2 / 2u;
    uint32_t o0, c, j;
    int32_t oy, ox;
    w16[m2 - 1] = 0; /* an odd window's last pair: a zero value (against a zero weight, below) */
    for (o0 = 0; o0 < g->oc; o0 += 8) {
        for (j = 0; j + 2u <= g->m; j += 2u) { /* in store order: sixteen weights per pair */
            int16_t *wp = wt + j * 8u;
            const int8_t *wr = weights + o0 * g->m + j;
            for (c = 0; c < 8; c++, wr += g->m) {
                wp[2u * c] = wr[0];
                wp[2u * c + 1u] = wr[1];
            }
        }
        if (j < m2) { /* an odd window's last pair: its weight and a zero */
            for (c = 0; c < 8; c++) {
                wt[j * 8u + 2u * c] = weights[(o0 + c) * g->m + j];
                wt[j * 8u + 2u * c + 1u] = 0;
            }
        }
        for (oy = 0; oy < g->oh; oy++) {
            for (ox = 0; ox < g->ow; ox++) {
                uint32_t base = (uint32_t)(oy * g->ow + ox) * g->oc + o0;
                const int16_t *wp = wt;
                const int16_t *xp = w16;
                __m256i a0 = _mm256_setzero_si256();
                __m256i a1 = a0;
                __m256i a2 = a0;
                __m256i a3 = a0;
                uint32_t t;
                et_window(g, x, oy, ox, win);
                if (sgn) {
                    for (j = 0; j < g->m; j++) {
                        w16[j] = (int8_t)win[j];
                    }
                } else {
                    for (j = 0; j < g->m; j++) {
                        w16[j] = win[j];
                    }
                }
                /* pair t of the window, broadcast, against the block's sixteen weights of pair t; four
                 * chains (vpmaddwd's latency is several cycles) */
#define ET_LANES_PAIR(acc, k) \
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_broadcastd_epi32(_mm_loadu_si32(xp + 2 * (k))), \
                                                  _mm256_loadu_si256((const __m256i *)(wp + 16 * (k)))))
                for (t = 0; t + 4u <= pairs; t += 4u, xp += 8, wp += 64) {
                    ET_LANES_PAIR(a0, 0);
                    ET_LANES_PAIR(a1, 1);
                    ET_LANES_PAIR(a2, 2);
                    ET_LANES_PAIR(a3, 3);
                }
                for (; t < pairs; t++, xp += 2, wp += 16) {
                    ET_LANES_PAIR(a0, 0);
                }
#undef ET_LANES_PAIR
                _mm256_storeu_si256((__m256i *)sums, _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)));
                for (c = 0; c < 8; c++) {
                    et_mac_store(q, sums[c], bias[o0 + c], out, base + c, npre, nact);
                }
            }
        }
    }
}
#endif

ET_HOT_VNNI_DEF(et_status_t, et_conv2d_forward_n)(const et_layer_t *layer, const int8_t *weights, const int16_t *bias,
                                                  const void *in, void *out, uint32_t *pre, uint32_t *act)
{
    const uint8_t *x = (const uint8_t *)in;
    et_status_t st = et_expect(layer, ET_LAYER_CONV2D);
    et_conv_geom_t g;
    et_rq_t q;
    int32_t oy, ox, ky;
    uint32_t o, nr;
    int sgn;
    uint32_t npre = 0;
    uint32_t nact = 0;
    uint8_t win[ET_WIN_FWD_MAX];
    if (st != ET_OK) {
        return st;
    }
    if (weights == NULL || bias == NULL || in == NULL || out == NULL) {
        return ET_ERR_ARG;
    }
    g = et_conv_geom(layer);
    q = et_rq_prepare(layer, g.m);
    sgn = et_signed_in(layer->in.fmt);
#if ET_HOST_WIDE
    if (et_thin_ok(&g)) {
        et_conv2d_forward_thin(&g, &q, weights, bias, x, out, sgn, pre, act);
        return ET_OK;
    }
#endif
#if ET_HOST_VNNI
    if (g.oc % 16u == 0 && g.m <= ET_LANES_MAX_M && et_host_vnni()) {
        et_conv2d_forward_vnni(&g, &q, weights, bias, x, out, sgn, &npre, &nact);
        *pre += npre;
        *act += nact;
        return ET_OK;
    }
#endif
#if ET_HOST_LANES
    if (g.oc % 8u == 0 && g.m <= ET_LANES_MAX_M && et_host_avx2()) {
        et_conv2d_forward_lanes(&g, &q, weights, bias, x, out, sgn, &npre, &nact);
        *pre += npre;
        *act += nact;
        return ET_OK;
    }
#endif
    if (g.m <= ET_WIN_FWD_MAX) {
        /* On the host the output channels go in blocks of about ET_FWD_BLOCK bytes of weights, each
         * block over every pixel (the window copied again per block): the block stays in the L1
         * cache, where one pixel's pass over all the weights (147 KiB for paper-cnn's 128 x 1152)
         * streamed them from L2 for every pixel. Firmware takes all channels in one block. */
        uint32_t o0, ob = g.oc;
#if ET_HOST_WIDE
        ob = ET_FWD_BLOCK / g.m;
        ob = ob < 4 ? 4u : ob - ob % 4u;
#endif
        for (o0 = 0; o0 < g.oc; o0 += ob) {
            uint32_t o1 = g.oc - o0 < ob ? g.oc : o0 + ob;
            for (oy = 0; oy < g.oh; oy++) {
                for (ox = 0; ox < g.ow; ox++) {
                    uint32_t base = (uint32_t)(oy * g.ow + ox) * g.oc;
                    et_window(&g, x, oy, ox, win);
                    /* four output channels per pass while four are left, then one; one inlined store */
                    for (o = o0; o < o1; o += nr) {
                        int32_t a4[4];
                        uint32_t r;
                        nr = o1 - o >= 4 ? 4u : 1u;
                        if (nr == 4) {
                            et_dot4(weights + o * g.m, g.m, win, g.m, sgn, a4);
                        } else {
                            a4[0] = et_dot(weights + o * g.m, win, g.m, sgn);
                        }
                        for (r = 0; r < nr; r++) {
                            et_mac_store(&q, a4[r], bias[o + r], out, base + o + r, &npre, &nact);
                        }
                    }
                }
            }
        }
        *pre += npre;
        *act += nact;
        return ET_OK;
    }
    /* Windows larger than the buffer. For one kernel row, the in-bounds taps kx0..kx1-1 are
     * (kx1 - kx0) ic contiguous bytes of the input and of the weight row: one dot product each; on
     * the host four output channels per pass while four are left (each activation loaded once for
     * four weight rows), then one. Firmware takes one at a time: a second call of et_dot4 keeps gcc
     * from inlining it into the window path above, which cost the M4 2 % of mcu-cnn's forward pass
     * (whose windows all fit). */
    for (oy = 0; oy < g.oh; oy++) {
        for (ox = 0; ox < g.ow; ox++) {
            uint32_t pix = (uint32_t)(oy * g.ow + ox);
            int32_t kx0 = g.pad - ox > 0 ? g.pad - ox : 0;
            int32_t kx1 = g.iw + g.pad - ox < g.k ? g.iw + g.pad - ox : g.k;
            uint32_t span = kx1 > kx0 ? (uint32_t)(kx1 - kx0) * g.ic : 0u;
            for (o = 0; o < g.oc; o += nr) {
                int32_t a4[4] = {0, 0, 0, 0};
                uint32_t r;
                nr = ET_HOST_WIDE && g.oc - o >= 4 ? 4u : 1u;
                for (ky = 0; ky < g.k && span != 0; ky++) {
                    int32_t iy = oy + ky - g.pad;
                    const int8_t *wr;
                    const uint8_t *xr;
                    if (iy < 0 || iy >= g.ih) {
                        continue;
                    }
                    wr = weights + o * g.m + ((uint32_t)(ky * g.k + kx0)) * g.ic;
                    xr = x + ((uint32_t)(iy * g.iw + ox + kx0 - g.pad)) * g.ic;
                    if (nr == 4) {
                        int32_t t[4];
                        et_dot4(wr, g.m, xr, span, sgn, t);
                        for (r = 0; r < 4; r++) {
                            a4[r] += t[r];
                        }
                    } else {
                        a4[0] += et_dot(wr, xr, span, sgn);
                    }
                }
                for (r = 0; r < nr; r++) {
                    et_mac_store(&q, a4[r], bias[o + r], out, pix * g.oc + o + r, &npre, &nact);
                }
            }
        }
    }
    *pre += npre;
    *act += nact;
    return ET_OK;
}

/* The public kernel: the body above in the ET_HOT clones, or its AVX-512 VNNI copy where the CPU
 * has VNNI (hot_internal.h). */
ET_HOT_VNNI_DISPATCH(et_status_t, et_conv2d_forward_n,
                     (const et_layer_t *layer, const int8_t *weights, const int16_t *bias, const void *in, void *out,
                      uint32_t *pre, uint32_t *act),
                     (layer, weights, bias, in, out, pre, act))

/*
 * round_shift(acc, shift) of an int32 for 1 <= shift <= 31, in 32 bits: the magnitude rounded half
 * up ((m >> shift) plus bit shift-1 of m), then the sign put back: half away from zero, the rule of
 * et_round_shift_s64. The magnitude is at most 2^31 (INT32_MIN), the result at most 2^30 + 1.
 */
static int32_t et_round_shift32(int32_t acc, int shift)
{
    uint32_t mag = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
    uint32_t r = (mag >> shift) + ((mag >> (shift - 1)) & 1u);
    return acc < 0 ? -(int32_t)r : (int32_t)r;
}

/*
 * Store one input gradient: int8 at 2^-7 (wide == 0, shift 7 + alpha_shift) or int16 at 2^-15
 * (wide == 1, shift alpha_shift - 1); *n counts clamps. Inlined, 32-bit for every shift >= 1 (the
 * 64-bit rule only for the wide format's alpha_shift 0 and 1, where the shift is -1 or 0).
 */
ET_ALWAYS_INLINE static void et_grad_store(void *dx, uint32_t idx, int32_t acc, int shift, int wide, uint32_t *n)
{
    int32_t lo = wide ? INT16_MIN : INT8_MIN;
    int32_t hi = wide ? INT16_MAX : INT8_MAX;
    int32_t r;
    if (shift >= 1) {
        r = et_round_shift32(acc, shift);
        *n += (uint32_t)(r < lo) | (uint32_t)(r > hi);
        r = et_clamp32(r, lo, hi);
    } else {
        r = (int32_t)et_rqc(acc, shift, lo, hi, n);
    }
    if (wide) {
        ((int16_t *)dx)[idx] = (int16_t)r;
    } else {
        ((int8_t *)dx)[idx] = (int8_t)r;
    }
}

/*
 * et_grad_store for a run: acc[0..len-1] into elements idx..idx+len-1 of dx. The shift's case and
 * the format are chosen once per run, so the loop for shifts >= 1 has no branch (gcc vectorises it
 * on the host).
 */
ET_HOT_INLINE void et_grad_store_run(void *dx, uint32_t idx, const int32_t *acc, uint32_t len, int shift,
                                   int wide, uint32_t *n)
{
    uint32_t j;
    uint32_t c = 0;
    if (shift < 1) {
        for (j = 0; j < len; j++) {
            et_grad_store(dx, idx + j, acc[j], shift, wide, n);
        }
        return;
    }
    if (wide) {
        int16_t *d = (int16_t *)dx + idx;
        for (j = 0; j < len; j++) {
            int32_t r = et_round_shift32(acc[j], shift);
            c += (uint32_t)(r < INT16_MIN) | (uint32_t)(r > INT16_MAX);
            d[j] = (int16_t)et_clamp32(r, INT16_MIN, INT16_MAX);
        }
    } else {
        int8_t *d = (int8_t *)dx + idx;
        for (j = 0; j < len; j++) {
            int32_t r = et_round_shift32(acc[j], shift);
            c += (uint32_t)(r < INT8_MIN) | (uint32_t)(r > INT8_MAX);
            d[j] = (int8_t)et_clamp32(r, INT8_MIN, INT8_MAX);
        }
    }
    *n += c;
}

/* The input gradient's rescale shift (et_grad_store). */
static int et_grad_shift(const et_layer_t *l, int wide)
{
    return wide ? l->alpha_shift - 1 : 7 + l->alpha_shift;
}

/*
 * Input gradients are summed a block of ET_GRAD_BLOCK input channels at a time
 * in a local int32 array: for each kernel tap and output channel o with
 * dz != 0, a contiguous run of one weight row times dz[o] is added (a loop gcc
 * vectorises), so zero gradients (ReLU) cost nothing and no weight is read with
 * a stride. Integer sums: the order does not change them.
 */
#define ET_GRAD_BLOCK 64

/*
 * Input gradients of a layer whose input rows are short (in.w * in.c <=
 * ET_GRAD_ROW): one input row at a time in a local int32 row. For each
 * kernel row ky, output pixel and output channel o with dz != 0, the in-bounds
 * taps of weight row (o, ky) are one contiguous run of (kx1 - kx0) in_c
 * weights added, times dz, to a contiguous run of the row (a loop gcc
 * vectorises): k * in_c elements per run instead of in_c for a thin layer.
 */
#define ET_GRAD_ROW 128

ET_HOT static et_status_t et_conv2d_backward_input_rows(const et_layer_t *layer, const et_conv_geom_t *g,
                                                        const int8_t *weights, const int8_t *dz, void *dx, int wide,
                                                        uint32_t *grad)
{
    int32_t acc[ET_GRAD_ROW];
    uint32_t rowlen = (uint32_t)g->iw * g->ic;
    uint32_t nclip = 0;
    int shift = et_grad_shift(layer, wide);
    int32_t iy, ky, ox;
    uint32_t j;
    for (iy = 0; iy < g->ih; iy++) {
        for (j = 0; j < rowlen; j++) {
            acc[j] = 0;
        }
        for (ky = 0; ky < g->k; ky++) {
            int32_t oy = iy - ky + g->pad;
            if (oy < 0 || oy >= g->oh) {
                continue;
            }
            for (ox = 0; ox < g->ow; ox++) {
                const int8_t *dr = dz + ((uint32_t)(oy * g->ow + ox)) * g->oc;
                int32_t kx0 = g->pad - ox > 0 ? g->pad - ox : 0;
                int32_t kx1 = g->iw + g->pad - ox < g->k ? g->iw + g->pad - ox : g->k;
                uint32_t span = kx1 > kx0 ? (uint32_t)(kx1 - kx0) * g->ic : 0u;
                int32_t *ar = acc + (uint32_t)(ox + kx0 - g->pad) * g->ic;
                const int8_t *wt = weights + ((uint32_t)(ky * g->k + kx0)) * g->ic;
                if (span != 0) {
                    et_grad_rows(ar, wt, g->m, dr, g->oc, span);
                }
            }
        }
        et_grad_store_run(dx, (uint32_t)iy * rowlen, acc, rowlen, shift, wide, &nclip);
    }
    *grad += nclip;
    return ET_OK;
}

ET_HOT et_status_t et_conv2d_backward_input_n(const et_layer_t *layer, const int8_t *weights, const int8_t *dz,
                                              void *dx, int wide, uint32_t *grad)
{
    et_status_t st = et_expect(layer, ET_LAYER_CONV2D);
    et_conv_geom_t g;
    int32_t iy, ix, ky, kx;
    uint32_t c, c0, nb;
    int32_t acc[ET_GRAD_BLOCK];
    uint32_t nclip = 0;
    int shift;
#if ET_HOST_WIDE
    uint64_t nz[ET_GRAD_NZ_WORDS];
    uint32_t words;
    int use_nz;
#endif
    if (st != ET_OK) {
        return st;
    }
    if (weights == NULL || dz == NULL || dx == NULL) {
        return ET_ERR_ARG;
    }
    g = et_conv_geom(layer);
    if ((uint32_t)g.iw * g.ic <= ET_GRAD_ROW) {
        return et_conv2d_backward_input_rows(layer, &g, weights, dz, dx, wide, grad);
    }
    shift = et_grad_shift(layer, wide);
#if ET_HOST_WIDE
    words = (g.oc + 63u) / 64u;
    use_nz = (uint32_t)(g.oh * g.ow) * words <= ET_GRAD_NZ_WORDS;
    if (use_nz) {
        et_grad_nz_masks(dz, (uint32_t)(g.oh * g.ow), g.oc, words, nz);
    }
#endif
    for (iy = 0; iy < g.ih; iy++) {
        for (ix = 0; ix < g.iw; ix++) {
            for (c0 = 0; c0 < g.ic; c0 += nb) {
                nb = g.ic - c0 < ET_GRAD_BLOCK ? g.ic - c0 : ET_GRAD_BLOCK;
                for (c = 0; c < nb; c++) {
                    acc[c] = 0;
                }
                for (ky = 0; ky < g.k; ky++) {
                    int32_t oy = iy - ky + g.pad;
                    if (oy < 0 || oy >= g.oh) {
                        continue;
                    }
                    for (kx = 0; kx < g.k; kx++) {
                        int32_t ox = ix - kx + g.pad;
                        const int8_t *dr;
                        const int8_t *wt;
                        if (ox < 0 || ox >= g.ow) {
                            continue;
                        }
                        dr = dz + ((uint32_t)(oy * g.ow + ox)) * g.oc;
                        wt = weights + ((uint32_t)(ky * g.k + kx)) * g.ic + c0;
#if ET_HOST_WIDE
                        if (use_nz) {
                            et_grad_rows_nz(acc, wt, g.m, dr, nz + (uint32_t)(oy * g.ow + ox) * words, words, nb);
                            continue;
                        }
#endif
                        et_grad_rows(acc, wt, g.m, dr, g.oc, nb);
                    }
                }
                et_grad_store_run(dx, ((uint32_t)(iy * g.iw + ix)) * g.ic + c0, acc, nb, shift, wide, &nclip);
            }
        }
    }
    *grad += nclip;
    return ET_OK;
}

et_status_t et_conv2d_backward_input(const et_layer_t *layer, const int8_t *weights, const int8_t *dz, int8_t *dx)
{
    uint32_t n = 0;
    return et_conv2d_backward_input_n(layer, weights, dz, dx, 0, &n);
}

et_status_t et_conv2d_backward_input_s16(const et_layer_t *layer, const int8_t *weights, const int8_t *dz,
                                         int16_t *dx)
{
    uint32_t n = 0;
    return et_conv2d_backward_input_n(layer, weights, dz, dx, 1, &n);
}

/*
 * The weight gradient of a thin conv (m = k*k*in_c <= ET_WIN_MAX): the windows of up to ET_WG_PIX
 * output pixels with a non-zero gradient are copied into a local buffer of ET_WG_BYTES (et_window),
 * then for each output channel the pixels whose gradient is non-zero are taken two at a time: one
 * run of m of dw[o] += da win_a + db win_b (et_axpy2), an odd one alone. Pairing pixels (not output
 * channels, whose dw rows differ) is what lets two products share one accumulator add; a block of
 * pixels is what makes pairs likely when a max-pool leaves one non-zero gradient in four.
 */
#define ET_WG_BYTES 1024
#define ET_WG_PIX 32

ET_HOT static void et_conv2d_weight_grad_windows(const et_conv_geom_t *g, const uint8_t *x, const int8_t *dz,
                                                 int32_t *dw, int sgn)
{
    uint8_t wins[ET_WG_BYTES];
    uint32_t pix[ET_WG_PIX];
    uint32_t cap = ET_WG_BYTES / g->m < ET_WG_PIX ? ET_WG_BYTES / g->m : ET_WG_PIX;
    int32_t oy = 0;
    int32_t ox = 0;
    uint32_t o, i;
    while (oy < g->oh) {
        uint32_t cnt = 0;
        /* the next block: up to cap pixels whose gradient is not all zero, in raster order */
        for (; oy < g->oh && cnt < cap; ox = ox + 1 < g->ow ? ox + 1 : 0, oy += ox == 0) {
            uint32_t p = (uint32_t)(oy * g->ow + ox);
            const int8_t *dr = dz + p * g->oc;
            for (o = 0; o < g->oc && dr[o] == 0; o++) {
            }
            if (o < g->oc) {
                et_window(g, x, oy, ox, wins + cnt * g->m);
                pix[cnt++] = p;
            }
        }
        for (o = 0; o < g->oc; o++) {
            int32_t *dwo = dw + o * g->m;
            const uint8_t *xp = NULL;
            int32_t dp = 0;
            for (i = 0; i < cnt; i++) {
                int32_t d = dz[pix[i] * g->oc + o];
                if (d == 0) {
                    continue;
                }
                if (xp == NULL) {
                    xp = wins + i * g->m;
                    dp = d;
                    continue;
                }
                et_axpy2(dwo, xp, dp, wins + i * g->m, d, g->m, sgn);
                xp = NULL;
            }
            if (xp != NULL) {
                et_axpy(dwo, dp, xp, g->m, sgn);
            }
        }
    }
}

/*
 * The weight gradient of a wide conv, one output channel at a time: a pixel whose window lies inside
 * the input has k rows of k*in_c contiguous bytes there (no copy), and two such pixels with a
 * non-zero gradient are added together (et_axpy2 per kernel row); pixels whose window SAME padding
 * clips add their in-bounds taps alone, one contiguous run per kernel row.
 */
ET_HOT static void et_conv2d_weight_grad_wide(const et_conv_geom_t *g, const uint8_t *x, const int8_t *dz,
                                              int32_t *dw, int sgn)
{
    uint32_t rowlen = (uint32_t)g->k * g->ic;
    uint32_t stride = (uint32_t)g->iw * g->ic;
    int32_t oy, ox, ky;
    uint32_t o;
    for (o = 0; o < g->oc; o++) {
        int32_t *dwo = dw + o * g->m;
        const uint8_t *xp = NULL;
        int32_t dp = 0;
        for (oy = 0; oy < g->oh; oy++) {
            int32_t iy0 = oy - g->pad;
            for (ox = 0; ox < g->ow; ox++) {
                int32_t d = dz[(uint32_t)(oy * g->ow + ox) * g->oc + o];
                int32_t kx0 = g->pad - ox > 0 ? g->pad - ox : 0;
                int32_t kx1 = g->iw + g->pad - ox < g->k ? g->iw + g->pad - ox : g->k;
                uint32_t span = kx1 > kx0 ? (uint32_t)(kx1 - kx0) * g->ic : 0u;
                if (d == 0) {
                    continue;
                }
                if (span == rowlen && iy0 >= 0 && iy0 + g->k <= g->ih) {
                    const uint8_t *xr = x + (uint32_t)(iy0 * g->iw + ox - g->pad) * g->ic;
                    if (xp == NULL) {
                        xp = xr;
                        dp = d;
                        continue;
                    }
                    for (ky = 0; ky < g->k; ky++) {
                        et_axpy2(dwo + (uint32_t)ky * rowlen, xp + (uint32_t)ky * stride, dp, xr + (uint32_t)ky * stride,
                                 d, rowlen, sgn);
                    }
                    xp = NULL;
                    continue;
                }
                /* the in-bounds taps of a kernel row: one contiguous run of the input and of the row */
                for (ky = 0; ky < g->k && span != 0; ky++) {
                    int32_t iy = iy0 + ky;
                    if (iy < 0 || iy >= g->ih) {
                        continue;
                    }
                    et_axpy(dwo + ((uint32_t)(ky * g->k + kx0)) * g->ic, d,
                            x + ((uint32_t)(iy * g->iw + ox + kx0 - g->pad)) * g->ic, span, sgn);
                }
            }
        }
        if (xp != NULL) {
            for (ky = 0; ky < g->k; ky++) {
                et_axpy(dwo + (uint32_t)ky * rowlen, dp, xp + (uint32_t)ky * stride, rowlen, sgn);
            }
        }
    }
}

et_status_t et_conv2d_weight_grad(const et_layer_t *layer, const void *in, const int8_t *dz, int32_t *dw)
{
    et_status_t st = et_expect(layer, ET_LAYER_CONV2D);
    et_conv_geom_t g;
    int sgn;
    if (st != ET_OK) {
        return st;
    }
    if (in == NULL || dz == NULL || dw == NULL) {
        return ET_ERR_ARG;
    }
    g = et_conv_geom(layer);
    sgn = et_signed_in(layer->in.fmt);
    memset(dw, 0, sizeof(int32_t) * g.oc * g.m);
    if (g.m <= ET_WIN_MAX) {
        et_conv2d_weight_grad_windows(&g, (const uint8_t *)in, dz, dw, sgn);
    } else {
        et_conv2d_weight_grad_wide(&g, (const uint8_t *)in, dz, dw, sgn);
    }
    return ET_OK;
}

et_status_t et_conv2d_bias_grad(const et_layer_t *layer, const int8_t *dz, int32_t *db)
{
    et_status_t st = et_expect(layer, ET_LAYER_CONV2D);
    uint32_t t, o, oc, pixels;
    if (st != ET_OK) {
        return st;
    }
    if (dz == NULL || db == NULL) {
        return ET_ERR_ARG;
    }
    oc = layer->out.c;
    pixels = (uint32_t)layer->out.h * layer->out.w;
    /* one output channel at a time, summed in a register (db written once: no int32 load and store per term) */
    for (o = 0; o < oc; o++) {
        const int8_t *d = dz + o;
        int32_t sum = 0;
        for (t = 0; t < pixels; t++) {
            sum += d[t * oc];
        }
        db[o] = sum;
    }
    return ET_OK;
}

et_status_t et_conv2d_im2col_row(const et_layer_t *layer, const void *in, uint32_t t, int16_t *row)
{
    const uint8_t *x = (const uint8_t *)in;
    et_status_t st = et_expect(layer, ET_LAYER_CONV2D);
    et_conv_geom_t g;
    int32_t oy, ox, ky, kx;
    uint32_t c;
    et_load_t ld;
    if (st != ET_OK) {
        return st;
    }
    if (in == NULL || row == NULL || t >= (uint32_t)layer->out.h * layer->out.w) {
        return ET_ERR_ARG;
    }
    g = et_conv_geom(layer);
    oy = (int32_t)(t / layer->out.w);
    ox = (int32_t)(t % layer->out.w);
    ld = et_loader(layer->in.fmt);
    for (ky = 0; ky < g.k; ky++) {
        int32_t iy = oy + ky - g.pad;
        for (kx = 0; kx < g.k; kx++) {
            int32_t ix = ox + kx - g.pad;
            int16_t *r = row + ((uint32_t)(ky * g.k + kx)) * g.ic;
            if (iy < 0 || iy >= g.ih || ix < 0 || ix >= g.iw) {
                for (c = 0; c < g.ic; c++) {
                    r[c] = 0;
                }
            } else {
                const uint8_t *xr = x + ((uint32_t)(iy * g.iw + ix)) * g.ic;
                for (c = 0; c < g.ic; c++) {
                    r[c] = (int16_t)ET_LOAD(ld, xr[c]);
                }
            }
        }
    }
    return ET_OK;
}

/* ---- Dense ------------------------------------------------------------- */

et_status_t et_dense_forward(const et_layer_t *layer, const int8_t *weights, const int16_t *bias, const void *in,
                             void *out)
{
    uint32_t pre = 0;
    uint32_t act = 0;
    return et_dense_forward_n(layer, weights, bias, in, out, &pre, &act);
}

ET_HOT_VNNI_DEF(et_status_t, et_dense_forward_n)(const et_layer_t *layer, const int8_t *weights, const int16_t *bias,
                                                 const void *in, void *out, uint32_t *pre, uint32_t *act)
{
    const uint8_t *x = (const uint8_t *)in;
    et_status_t st = et_expect(layer, ET_LAYER_DENSE);
    uint32_t n, m, o;
    et_rq_t q;
    int sgn;
    uint32_t npre = 0;
    uint32_t nact = 0;
    if (st != ET_OK) {
        return st;
    }
    if (weights == NULL || bias == NULL || in == NULL || out == NULL) {
        return ET_ERR_ARG;
    }
    n = layer->out.c;
    m = layer->in.c;
    q = et_rq_prepare(layer, m);
    sgn = et_signed_in(layer->in.fmt);
    for (o = 0; o < n; o++) {
        const int8_t *wr = weights + o * m;
        et_mac_store(&q, et_dot(wr, x, m, sgn), bias[o], out, o, &npre, &nact);
    }
    *pre += npre;
    *act += nact;
    return ET_OK;
}

ET_HOT_VNNI_DISPATCH(et_status_t, et_dense_forward_n,
                     (const et_layer_t *layer, const int8_t *weights, const int16_t *bias, const void *in, void *out,
                      uint32_t *pre, uint32_t *act),
                     (layer, weights, bias, in, out, pre, act))

ET_HOT et_status_t et_dense_backward_input_n(const et_layer_t *layer, const int8_t *weights, const int8_t *dz,
                                             void *dx, int wide, uint32_t *grad)
{
    et_status_t st = et_expect(layer, ET_LAYER_DENSE);
    uint32_t n, m, j, j0, nb;
    int32_t acc[ET_GRAD_BLOCK];
    uint32_t nclip = 0;
    int shift;
    if (st != ET_OK) {
        return st;
    }
    if (weights == NULL || dz == NULL || dx == NULL) {
        return ET_ERR_ARG;
    }
    n = layer->out.c;
    m = layer->in.c;
    shift = et_grad_shift(layer, wide);
    for (j0 = 0; j0 < m; j0 += nb) {
        nb = m - j0 < ET_GRAD_BLOCK ? m - j0 : ET_GRAD_BLOCK;
        for (j = 0; j < nb; j++) {
            acc[j] = 0;
        }
        et_grad_rows(acc, weights + j0, m, dz, n, nb);
        et_grad_store_run(dx, j0, acc, nb, shift, wide, &nclip);
    }
    *grad += nclip;
    return ET_OK;
}

et_status_t et_dense_backward_input(const et_layer_t *layer, const int8_t *weights, const int8_t *dz, int8_t *dx)
{
    uint32_t n = 0;
    return et_dense_backward_input_n(layer, weights, dz, dx, 0, &n);
}

et_status_t et_dense_backward_input_s16(const et_layer_t *layer, const int8_t *weights, const int8_t *dz, int16_t *dx)
{
    uint32_t n = 0;
    return et_dense_backward_input_n(layer, weights, dz, dx, 1, &n);
}

/* ---- MaxPool 2x2 ---------------------------------------------------------- */

/* Offset (in elements) of the first maximum of the window at output (y, x), channel c. */
static uint32_t et_pool_argmax(const et_layer_t *l, const uint8_t *in, uint32_t y, uint32_t x, uint32_t c)
{
    uint32_t iw = l->in.w;
    uint32_t ic = l->in.c;
    uint32_t base = ((2 * y) * iw + 2 * x) * ic + c;
    uint32_t cand[4];
    uint32_t best = base;
    int i;
    cand[0] = base;
    cand[1] = base + ic;
    cand[2] = base + iw * ic;
    cand[3] = base + iw * ic + ic;
    for (i = 1; i < 4; i++) {
        if (in[cand[i]] > in[best]) {
            best = cand[i];
        }
    }
    return best;
}

et_status_t et_maxpool2_forward(const et_layer_t *layer, const uint8_t *in, uint8_t *out)
{
    et_status_t st = et_expect(layer, ET_LAYER_MAXPOOL2);
    uint32_t y, x, c, oh, ow, oc, iw, ic;
    if (st != ET_OK) {
        return st;
    }
    if (in == NULL || out == NULL) {
        return ET_ERR_ARG;
    }
    oh = layer->out.h;
    ow = layer->out.w;
    oc = layer->out.c;
    iw = layer->in.w;
    ic = layer->in.c;
    /* the largest of the four values (which of equal ones is the argmax does not change it), a
     * loop along the contiguous channels */
    for (y = 0; y < oh; y++) {
        for (x = 0; x < ow; x++) {
            const uint8_t *p0 = in + ((2 * y) * iw + 2 * x) * ic;
            const uint8_t *p1 = p0 + ic;
            const uint8_t *p2 = p0 + iw * ic;
            const uint8_t *p3 = p2 + ic;
            uint8_t *o = out + (y * ow + x) * oc;
            for (c = 0; c < oc; c++) {
                uint8_t a = p0[c] > p1[c] ? p0[c] : p1[c];
                uint8_t b = p2[c] > p3[c] ? p2[c] : p3[c];
                o[c] = a > b ? a : b;
            }
        }
    }
    return ET_OK;
}

et_status_t et_maxpool2_backward(const et_layer_t *layer, const uint8_t *in, const int8_t *dout, int8_t *din)
{
    et_status_t st = et_expect(layer, ET_LAYER_MAXPOOL2);
    uint32_t y, x, c, oh, ow, oc;
    if (st != ET_OK) {
        return st;
    }
    if (in == NULL || dout == NULL || din == NULL) {
        return ET_ERR_ARG;
    }
    oh = layer->out.h;
    ow = layer->out.w;
    oc = layer->out.c;
    memset(din, 0, (size_t)layer->in.h * layer->in.w * layer->in.c);
    for (y = 0; y < oh; y++) {
        for (x = 0; x < ow; x++) {
            for (c = 0; c < oc; c++) {
                din[et_pool_argmax(layer, in, y, x, c)] = dout[(y * ow + x) * oc + c];
            }
        }
    }
    return ET_OK;
}

/* ---- Flatten -------------------------------------------------------------- */

static uint32_t et_elem_bytes(uint8_t fmt)
{
    return fmt == ET_FMT_BIAS ? 2u : 1u;
}

et_status_t et_flatten_forward(const et_layer_t *layer, const void *in, void *out)
{
    et_status_t st = et_expect(layer, ET_LAYER_FLATTEN);
    if (st != ET_OK) {
        return st;
    }
    if (in == NULL || out == NULL) {
        return ET_ERR_ARG;
    }
    if (in != out) {
        memmove(out, in, (size_t)layer->out.c * et_elem_bytes(layer->in.fmt));
    }
    return ET_OK;
}

et_status_t et_flatten_backward(const et_layer_t *layer, const int8_t *dout, int8_t *din)
{
    et_status_t st = et_expect(layer, ET_LAYER_FLATTEN);
    if (st != ET_OK) {
        return st;
    }
    if (dout == NULL || din == NULL) {
        return ET_ERR_ARG;
    }
    if (din != dout) {
        memmove(din, dout, layer->out.c);
    }
    return ET_OK;
}

/* ---- Streaming batch norm ------------------------------------------------- */

static int64_t et_div_round(int64_t num, int64_t den)
{
    int64_t q = 0;
    (void)et_div_round_s64(num, den, &q); /* den > 0 at every call site */
    return q;
}

et_status_t et_batchnorm_update_stats(const et_layer_t *layer, const uint8_t *in, int16_t *params,
                                      uint32_t *decay_q30)
{
    uint32_t n = 0;
    return et_batchnorm_update_stats_n(layer, in, params, decay_q30, &n);
}

et_status_t et_batchnorm_update_stats_n(const et_layer_t *layer, const uint8_t *in, int16_t *params,
                                        uint32_t *decay_q30, uint32_t *stats)
{
    et_status_t st = et_expect(layer, ET_LAYER_BATCHNORM);
    uint32_t ch, c, p, pixels;
    int16_t *mean;
    int16_t *msq;
    if (st != ET_OK) {
        return st;
    }
    if (in == NULL || params == NULL || decay_q30 == NULL || *decay_q30 > ET_BN_ONE_Q30) {
        return ET_ERR_ARG;
    }
    ch = layer->in.c;
    pixels = (uint32_t)layer->in.h * layer->in.w;
    mean = params + 2 * ch;
    msq = params + 3 * ch;
    for (c = 0; c < ch; c++) {
        int64_t s1 = 0;
        int64_t s2 = 0;
        int64_t m1;
        int64_t m2;
        int64_t e1;
        int64_t e2;
        for (p = 0; p < pixels; p++) {
            int64_t v = in[p * ch + c];
            s1 += v;
            s2 += v * v;
        }
        m1 = et_div_round(s1 * 32, (int64_t)pixels);
        m2 = et_div_round(s2, (int64_t)pixels * 32);
        e1 = et_div_round((ET_BN_WINDOW - 1) * (int64_t)mean[c] + m1, ET_BN_WINDOW);
        e2 = et_div_round((ET_BN_WINDOW - 1) * (int64_t)msq[c] + m2, ET_BN_WINDOW);
        *stats += et_out(e1, INT16_MIN, INT16_MAX) + et_out(e2, INT16_MIN, INT16_MAX);
        mean[c] = (int16_t)et_saturate_s64(e1, INT16_MIN, INT16_MAX);
        msq[c] = (int16_t)et_saturate_s64(e2, INT16_MIN, INT16_MAX);
    }
    *decay_q30 = (uint32_t)et_div_round((ET_BN_WINDOW - 1) * (int64_t)*decay_q30, ET_BN_WINDOW);
    return ET_OK;
}

/* One channel's bias-corrected statistics (corr = 2^30 - decay; 0: none seen, no correction). */
static void et_bn_corrected(const et_layer_t *l, const int16_t *params, int64_t corr, uint32_t c, int64_t *mh,
                            int64_t *sh)
{
    uint32_t ch = l->in.c;
    *mh = params[2 * ch + c];
    *sh = params[3 * ch + c];
    if (corr != 0) {
        *mh = et_saturate_s64(et_div_round(*mh * ET_BN_ONE_Q30, corr), INT16_MIN, INT16_MAX);
        *sh = et_saturate_s64(et_div_round(*sh * ET_BN_ONE_Q30, corr), INT16_MIN, INT16_MAX);
    }
}

et_status_t et_batchnorm_corrected_stats(const et_layer_t *layer, const int16_t *params, uint32_t decay_q30,
                                         int16_t *out)
{
    et_status_t st = et_expect(layer, ET_LAYER_BATCHNORM);
    uint32_t ch, c;
    if (st != ET_OK) {
        return st;
    }
    if (params == NULL || out == NULL || decay_q30 > ET_BN_ONE_Q30) {
        return ET_ERR_ARG;
    }
    ch = layer->in.c;
    for (c = 0; c < ch; c++) {
        int64_t mh;
        int64_t sh;
        et_bn_corrected(layer, params, (int64_t)ET_BN_ONE_Q30 - decay_q30, c, &mh, &sh);
        out[c] = (int16_t)mh;
        out[ch + c] = (int16_t)sh;
    }
    return ET_OK;
}

et_status_t et_batchnorm_prepare(const et_layer_t *layer, const int16_t *params, uint32_t decay_q30,
                                 int32_t *mean_hat, int32_t *inv_sigma)
{
    et_status_t st = et_expect(layer, ET_LAYER_BATCHNORM);
    uint32_t ch, c;
    if (st != ET_OK) {
        return st;
    }
    if (params == NULL || mean_hat == NULL || inv_sigma == NULL || decay_q30 > ET_BN_ONE_Q30) {
        return ET_ERR_ARG;
    }
    ch = layer->in.c;
    for (c = 0; c < ch; c++) {
        int64_t mh;
        int64_t sh;
        int64_t var;
        uint32_t sigma;
        et_bn_corrected(layer, params, (int64_t)ET_BN_ONE_Q30 - decay_q30, c, &mh, &sh);
        var = sh * 32768 - mh * mh;
        if (var < 1) {
            var = 1;
        }
        sigma = et_isqrt_u64((uint64_t)var << 16);
        mean_hat[c] = (int32_t)mh;
        inv_sigma[c] = (int32_t)et_div_round(INT64_C(1) << 36, (int64_t)sigma);
    }
    return ET_OK;
}

/* The normalised input: (x * 2^5 - mean_hat) * inv_sigma rescaled to LSB 2^-12. */
static int32_t et_bn_xhat(uint8_t x, int32_t mean_hat, int32_t inv_sigma)
{
    return (int32_t)et_round_shift_s64(((int64_t)x * 32 - mean_hat) * inv_sigma, 16);
}

et_status_t et_batchnorm_forward(const et_layer_t *layer, const uint8_t *in, const int16_t *params,
                                 const int32_t *mean_hat, const int32_t *inv_sigma, int8_t *out)
{
    uint32_t n = 0;
    return et_batchnorm_forward_n(layer, in, params, mean_hat, inv_sigma, out, &n);
}

et_status_t et_batchnorm_forward_n(const et_layer_t *layer, const uint8_t *in, const int16_t *params,
                                   const int32_t *mean_hat, const int32_t *inv_sigma, int8_t *out, uint32_t *act)
{
    et_status_t st = et_expect(layer, ET_LAYER_BATCHNORM);
    uint32_t ch, c, p, pixels;
    uint32_t n = 0;
    if (st != ET_OK) {
        return st;
    }
    if (in == NULL || params == NULL || mean_hat == NULL || inv_sigma == NULL || out == NULL) {
        return ET_ERR_ARG;
    }
    ch = layer->in.c;
    pixels = (uint32_t)layer->in.h * layer->in.w;
    for (p = 0; p < pixels; p++) {
        for (c = 0; c < ch; c++) {
            uint32_t i = p * ch + c;
            int64_t xhat = et_bn_xhat(in[i], mean_hat[c], inv_sigma[c]);
            out[i] = (int8_t)et_rqc(params[c] * xhat + (int64_t)params[ch + c] * 4096, 18, INT8_MIN, INT8_MAX, &n);
        }
    }
    *act += n;
    return ET_OK;
}

et_status_t et_batchnorm_backward(const et_layer_t *layer, const uint8_t *in, const int8_t *out,
                                  const int16_t *params, const int32_t *mean_hat, const int32_t *inv_sigma,
                                  const int16_t *dout, int8_t *din, int64_t *dgamma, int64_t *dbeta)
{
    uint32_t n = 0;
    return et_batchnorm_backward_n(layer, in, out, params, mean_hat, inv_sigma, dout, din, dgamma, dbeta, &n);
}

et_status_t et_batchnorm_backward_n(const et_layer_t *layer, const uint8_t *in, const int8_t *out,
                                    const int16_t *params, const int32_t *mean_hat, const int32_t *inv_sigma,
                                    const int16_t *dout, int8_t *din, int64_t *dgamma, int64_t *dbeta, uint32_t *grad)
{
    et_status_t st = et_expect(layer, ET_LAYER_BATCHNORM);
    uint32_t ch, c, p, pixels;
    uint32_t n = 0;
    if (st != ET_OK) {
        return st;
    }
    if (in == NULL || out == NULL || params == NULL || mean_hat == NULL || inv_sigma == NULL || dout == NULL ||
        dgamma == NULL || dbeta == NULL) {
        return ET_ERR_ARG;
    }
    ch = layer->in.c;
    pixels = (uint32_t)layer->in.h * layer->in.w;
    for (c = 0; c < ch; c++) {
        dgamma[c] = 0;
        dbeta[c] = 0;
    }
    for (p = 0; p < pixels; p++) {
        for (c = 0; c < ch; c++) {
            uint32_t i = p * ch + c;
            int64_t g = (out[i] > INT8_MIN && out[i] < INT8_MAX) ? dout[i] : 0;
            if (din != NULL) {
                din[i] = (int8_t)et_rqc(g * params[c] * inv_sigma[c], 36, INT8_MIN, INT8_MAX, &n);
            }
            if (g != 0) {
                dbeta[c] += g;
                dgamma[c] += g * et_bn_xhat(in[i], mean_hat[c], inv_sigma[c]);
            }
        }
    }
    *grad += n;
    return ET_OK;
}

/* ---- Softmax cross-entropy -------------------------------------------------- */

/* round(2^16 * 2^(j/32)), j = 0..32 (docs/layers.md; a test recomputes it exactly). */
static const uint32_t et_exp2_table[33] = {
    65536,  66971,  68438,  69936,  71468,  73032,  74632,  76266,  77936,  79642,  81386,
    83169,  84990,  86851,  88752,  90696,  92682,  94711,  96785,  98905,  101070, 103283,
    105545, 107856, 110218, 112631, 115098, 117618, 120194, 122825, 125515, 128263, 131072,
};

uint32_t et_softmax_exp2_q16(int32_t u)
{
    int32_t q;
    int32_t f;
    int32_t j;
    int32_t r;
    int64_t mant;
    if (u > 0) {
        u = 0;
    }
    q = u >> 12;            /* floor(u / 4096) */
    f = u - q * 4096;        /* 0..4095 */
    j = f >> 7;
    r = f & 127;
    mant = (int64_t)et_exp2_table[j] +
           et_round_shift_s64(((int64_t)et_exp2_table[j + 1] - et_exp2_table[j]) * r, 7);
    return (uint32_t)et_round_shift_s64(mant, -q);
}

static uint16_t et_argmax16(const int16_t *v, uint32_t n)
{
    uint32_t i;
    uint32_t best = 0;
    for (i = 1; i < n; i++) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return (uint16_t)best;
}

et_status_t et_softmax_ce_forward(const et_layer_t *layer, const int16_t *logits, uint16_t *predicted)
{
    et_status_t st = et_expect(layer, ET_LAYER_SOFTMAX_CE);
    if (st != ET_OK) {
        return st;
    }
    if (logits == NULL || predicted == NULL) {
        return ET_ERR_ARG;
    }
    *predicted = et_argmax16(logits, layer->in.c);
    return ET_OK;
}

et_status_t et_softmax_ce_backward(const et_layer_t *layer, const int16_t *logits, uint16_t label, int8_t *grad)
{
    uint32_t n = 0;
    return et_softmax_ce_backward_n(layer, logits, label, grad, &n);
}

et_status_t et_softmax_ce_backward_n(const et_layer_t *layer, const int16_t *logits, uint16_t label, int8_t *grad,
                                     uint32_t *clips)
{
    et_status_t st = et_expect(layer, ET_LAYER_SOFTMAX_CE);
    uint32_t n, i;
    int32_t zmax;
    int64_t sum = 0;
    int64_t others = 0;
    if (st != ET_OK) {
        return st;
    }
    n = layer->in.c;
    if (logits == NULL || grad == NULL || label >= n) {
        return ET_ERR_ARG;
    }
    zmax = logits[et_argmax16(logits, n)];
    for (i = 0; i < n; i++) {
        sum += et_softmax_exp2_q16((int32_t)et_round_shift_s64(((int64_t)logits[i] - zmax) * ET_LOG2E_Q15, 15));
    }
    /* p[i] rounded for i != label; the label's entry makes the gradient sum to zero, as p - onehot does. */
    for (i = 0; i < n; i++) {
        int64_t e = et_softmax_exp2_q16((int32_t)et_round_shift_s64(((int64_t)logits[i] - zmax) * ET_LOG2E_Q15, 15));
        if (i != label) {
            int64_t p = et_div_round(128 * e, sum);
            *clips += et_out(p, INT8_MIN, INT8_MAX);
            grad[i] = (int8_t)et_saturate_s64(p, INT8_MIN, INT8_MAX);
            others += grad[i];
        }
    }
    *clips += et_out(-others, INT8_MIN, INT8_MAX);
    grad[label] = (int8_t)et_saturate_s64(-others, INT8_MIN, INT8_MAX);
    return ET_OK;
}
