/*
 * edgetrain — low-rank training accumulator (et_lrt.h), integer only.
 *
 * Formats and bounds (docs/lrt.md has the derivations):
 *   residuals   int32, rescaled by exact shifts so that sum(res^2) lies in [2^54, 2^56)
 *   coefficients a_j, rho: int64 in residual units, |a_j| < 2^29 for valid bases
 *   core C      int32, |C_ij| <= 2^25, one shared exponent
 *   Jacobi      A int32 (|A_ij| < 2^28.2), V and U Q30 int32, all sums int64
 *   rotation    results formed exactly at 2^-60 in int64, then rounded once to int16 (column 1: 16 + b bits)
 *   bases       int16 q at one exponent (0: an empty basis; otherwise -44..-14, unit columns) and one
 *               16-bit multiplier f (entries q f 2^(exp - 16)); column 1 with b more low bits in a
 *               plane after the bases (b = 2 at r >= 3), read as extended mantissas E = q 2^b + lo
 * Every rescale is the rounding rule (et_round_shift_s64, inlined in hot loops
 * from fixed_inline.h) and every quotient et_div_round_s64 (inlined too); square roots round
 * et_isqrt_u64 to nearest.
 */
#include <string.h>

#include "edgetrain/et_fixed.h"
#include "edgetrain/et_lrt.h"
#include "edgetrain/et_maxnorm.h"
#include "fixed_inline.h"
#include "hot_internal.h"

/* The header is the same 56 bytes on every target (the plan counts on it). */
typedef char et_lrt_header_size_check[(sizeof(et_lrt_state_t) == ET_LRT_STATE_HEADER) ? 1 : -1];

#define LRT_Q30 (INT64_C(1) << 30)
#define LRT_RES_BITS 56       /* residuals: sum of squares below 2^56 */
#define LRT_CORE_BITS 25      /* core entries: magnitude at most 2^25 */
#define LRT_WORK_EXP (-60)    /* rotation results are formed at 2^-60 */
#define LRT_BASIS_EXP_MIN (-44) /* block exponents of a non-empty basis */
#define LRT_BASIS_EXP_MAX (-14)
#define LRT_COEF_GUARD (INT64_C(1) << 40) /* |a_j| bound; valid bases give < 2^29 */
#define LRT_QMAX (ET_LRT_MAX_RANK + 1)
#define LRT_F_BITS 16                     /* a basis' multiplier f: Q16 in [1/2, 1) */
#define LRT_F_MIN (UINT32_C(1) << 15)
#define LRT_F_MAX (UINT32_C(65535))
#define LRT_F_ONE (UINT32_C(1) << 16)     /* a batch's own frame columns: no multiplier */
#define LRT_MANT_TOP 32767                /* a rotation scales its bound to this mantissa */
#define LRT_BOUND_CAP (UINT64_C(1) << 62) /* a rotation's entry bound is capped here */

/*
 * hot_internal.h: on x86-64 Linux gcc hosts the ET_HOT loops below are compiled for AVX-512, AVX2
 * and baseline x86-64 and picked at load time (the same bits: integer only); elsewhere plain C.
 */
#if ET_HOST_WIDE
#define LRT_WIDE 1
#elif defined(ET_LRT_WIDE_NOCLONE) /* tests: the wide loops, built once for the target given */
#define LRT_WIDE 1
#else
#define LRT_WIDE 0
#endif
/*
 * LRT_WIDE: the host build also gets loop copies written for the vectoriser (a rank-4 MGS, sweeps
 * without the clamp, rotation rows in 32-bit products) and inlined roundings. Firmware keeps
 * one generic copy of most loops: the same values in less code (Cortex-M text); of the MGS sweeps
 * it has the 32 x 32 -> 64-bit one (one copy per dot_next, the clamp a run-time flag).
 */
/* LRT_LONG_MUL: 32 x 32 -> 64-bit products are one instruction (not on Armv6-M or Armv8-M Baseline,
 * where they are a libgcc call): the rotation passes then split g_k into two int32 halves. */
#if defined(__arm__) && defined(__ARM_ARCH_ISA_THUMB) && __ARM_ARCH_ISA_THUMB == 1
#define LRT_LONG_MUL 0
#else
#define LRT_LONG_MUL 1
#endif
#if LRT_WIDE
#define LRT_RSHIFT et_round_shift_s64_inline
#define LRT_SAT et_saturate_s64_inline
#else
#define LRT_RSHIFT et_round_shift_s64
#define LRT_SAT et_saturate_s64
#endif
/* The rounding rule where the shift is known to lie in 1..63 (a few instructions inline on every target:
 * the per-term scalars of the MGS passes and the rotation's weights) */
#define LRT_RSHIFT_POS et_round_shift_pos_inline
/*
 * LRT_OPAQUE32(x): x's value hidden from the optimiser, on Arm gcc. Where an int32 x was taken from an
 * int64 after a range check, gcc puts the int64 back into (int64_t)x * y and multiplies 64 x 64 bits
 * (three instructions on a Cortex-M where one long multiply does). An empty asm emits nothing.
 */
#if defined(__GNUC__) && defined(__arm__)
#define LRT_OPAQUE32(x) __asm__("" : "+r"(x))
#else
#define LRT_OPAQUE32(x) ((void)0)
#endif
/* Kernels the hot functions inline (into each clone, with the rank a constant where given). */
#if defined(__GNUC__)
#define LRT_INLINE static inline __attribute__((always_inline))
#else
#define LRT_INLINE static inline
#endif

/* ---- small helpers ---------------------------------------------------------- */

static uint64_t lrt_abs(int64_t v)
{
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

static int lrt_bitlen(uint64_t v)
{
    return 64 - et_clz_u64(v);
}

/* sqrt(v) rounded to nearest: floor root r, plus one when v - r^2 > r. */
static uint64_t lrt_sqrt_round(uint64_t v)
{
    uint64_t r = et_isqrt_u64(v);
    return (v - r * r > r) ? r + 1 : r;
}

static int64_t lrt_div(int64_t num, int64_t den)
{
    return et_div_round_s64_inline(num, den); /* callers guarantee den != 0 and no INT64_MIN / -1 */
}

/* v clamped to int32 (a compare and a select each side, no call). */
static int32_t lrt_clamp32(int64_t v)
{
    v = v < INT32_MIN ? INT32_MIN : v;
    return (int32_t)(v > INT32_MAX ? INT32_MAX : v);
}

/*
 * The rounding rule for 1 <= shift <= 63 and |x| < 2^63 written as sign and magnitude:
 * round half away from zero is sign(x) floor((|x| + half) / 2^shift), the same value as
 * et_round_shift_pos_inline, with logical shifts only (AVX2 has no 64-bit arithmetic shift).
 */
static inline int64_t lrt_round_shift_sm(int64_t x, int shift)
{
    uint64_t s = (uint64_t)0 - (uint64_t)(x < 0);
    uint64_t mag = ((uint64_t)x ^ s) - s;
    uint64_t y = (mag + (UINT64_C(1) << (shift - 1))) >> shift;
    return (int64_t)((y ^ s) - s);
}

/* 0 (empty basis) or a block exponent of unit columns. */
static int lrt_basis_exp_ok(int64_t e)
{
    return e == 0 || (e >= LRT_BASIS_EXP_MIN && e <= LRT_BASIS_EXP_MAX);
}

static int lrt_exp_ok16(int64_t e)
{
    return e >= INT16_MIN && e <= INT16_MAX;
}

static int16_t *lrt_ql(const et_lrt_state_t *st)
{
    return (int16_t *)(void *)((unsigned char *)(void *)(et_lrt_state_t *)st + sizeof(et_lrt_state_t));
}

static int16_t *lrt_qr(const et_lrt_state_t *st)
{
    return lrt_ql(st) + (size_t)st->n * st->rank;
}

/* Column 1's extra fraction bits: two at r >= 3, one at r = 2, none at r = 1. */
static int lrt_low_bits(int rank)
{
    return rank >= 3 ? 2 : (rank == 2 ? 1 : 0);
}

/* Bytes of one basis' plane of column-1 low bits: b bits per row, packed from bit 0 of byte 0. */
static size_t lrt_plane_bytes(uint32_t len, int rank)
{
    return ((size_t)len * (size_t)lrt_low_bits(rank) + 7) / 8;
}

static uint8_t *lrt_plane_l(const et_lrt_state_t *st)
{
    return (uint8_t *)(void *)(lrt_qr(st) + (size_t)st->m * st->rank);
}

static uint8_t *lrt_plane_r(const et_lrt_state_t *st)
{
    return lrt_plane_l(st) + lrt_plane_bytes(st->n, st->rank);
}

/* Row i's low bits of column 1 in a plane. */
static int32_t lrt_plane_lo(const uint8_t *plane, uint32_t i, int b)
{
    uint32_t bit = i * (uint32_t)b;
    return b != 0 ? (int32_t)(((uint32_t)plane[bit >> 3] >> (bit & 7u)) & ((UINT32_C(1) << b) - 1u)) : 0;
}

/* lrt_ext_unpack for b = 1 or 2 (a constant where inlined): the plane byte by byte, 8 / b rows each. */
LRT_INLINE void lrt_ext_unpack_b(const int16_t *q, const uint8_t *plane, uint32_t len, int rank, int32_t *e0,
                                 const int b)
{
    const uint32_t per = 8u / (uint32_t)b;
    const uint32_t mask = (UINT32_C(1) << b) - 1u;
    uint32_t full = len / per;
    uint32_t j;
    uint32_t t;
    for (j = 0; j < full; j++) {
        uint32_t byte = plane[j];
        for (t = 0; t < per; t++) {
            uint32_t i = j * per + t;
            e0[i] = (int32_t)q[(size_t)i * rank] * ((int32_t)1 << b) + (int32_t)((byte >> (t * (uint32_t)b)) & mask);
        }
    }
    for (t = full * per; t < len; t++) {
        e0[t] = (int32_t)q[(size_t)t * rank] * ((int32_t)1 << b) + lrt_plane_lo(plane, t, b);
    }
}

/* lrt_ext_pack for b = 1 or 2 (a constant where inlined). */
LRT_INLINE void lrt_ext_pack_b(const int32_t *e0, uint32_t len, uint8_t *plane, const int b)
{
    const uint32_t per = 8u / (uint32_t)b;
    const uint32_t mask = (UINT32_C(1) << b) - 1u;
    uint32_t full = len / per;
    uint32_t j;
    uint32_t t;
    for (j = 0; j < full; j++) {
        uint32_t byte = 0;
        for (t = 0; t < per; t++) {
            byte |= ((uint32_t)e0[j * per + t] & mask) << (t * (uint32_t)b);
        }
        plane[j] = (uint8_t)byte;
    }
    if (full * per < len) { /* the last, partial byte */
        uint32_t byte = 0;
        for (t = 0; full * per + t < len; t++) {
            byte |= ((uint32_t)e0[full * per + t] & mask) << (t * (uint32_t)b);
        }
        plane[full] = (uint8_t)byte;
    }
}

/* The column sums lrt_cols_within reads, rank a constant where inlined. */
LRT_INLINE void lrt_cols_sums_r(const int16_t *q, const int32_t *e0, const int rank, uint32_t len, uint64_t *sq)
{
    uint32_t acc[ET_LRT_MAX_RANK];
    uint64_t acc0 = 0;
    uint32_t i;
    int k;
    for (k = 0; k < rank; k++) {
        acc[k] = 0;
    }
    for (i = 0; i < len; i++) {
        for (k = 1; k < rank; k++) {
            int32_t v = q[(size_t)i * rank + k];
            acc[k] += (uint32_t)(v * v) >> 16;
        }
        acc0 += (uint64_t)((int64_t)e0[i] * e0[i]) >> 16;
    }
    sq[0] = acc0;
    for (k = 1; k < rank; k++) {
        sq[k] = acc[k];
    }
}

/* What lrt_ext_unpack can gather about a basis while it reads every row (AVX-512 hosts): the column
 * sums lrt_cols_within reads and max |q| over all mantissas, as lrt_abs_max16 finds it. */
typedef struct {
    uint64_t sq[ET_LRT_MAX_RANK];
    uint32_t qmax;
} lrt_scan_t;

#if ET_HOST_WIDE && !defined(ET_NO_LRT_AVX2)
#define LRT_AVX2 1
#include <immintrin.h>

/* AVX2: the store pass and the MGS sweeps take their AVX2 kernels below on every CPU with it, AVX-512
 * ones included, where they beat the compiler's x86-64-v4 clones of the same loops by about 7 %
 * (docs/performance.md). */
static int lrt_host_avx2(void)
{
    return __builtin_cpu_supports("avx2");
}

/* AVX2 without AVX-512: the scan and the Gram sums, which have AVX-512 kernels of their own. */
static int lrt_host_avx2_only(void)
{
    return lrt_host_avx2() && !__builtin_cpu_supports("x86-64-v4");
}
#else
#define LRT_AVX2 0
#endif

#if ET_HOST_WIDE && (!defined(ET_NO_LRT_AVX512) || !defined(ET_NO_LRT_AVX2))
/* LRT_GRAM: the unpack's scan and the kappa bound from the dot products and the Gram matrix (their
 * kernels for AVX-512 and for AVX2; each CPU runs the one its features pick, or none) */
#define LRT_GRAM 1

/* What lrt_dots4_* and lrt_gram4_* form from a rank-4 basis (b = 2) and an 8-bit input X:
 * the input's dot products with the columns' int16 mantissas, dot[k] = sum q_ik X_i (column 1 without
 * its low bits), xabs = sum |X_i|, and for the column pairs (j, k) in lrt_gram_pairs order
 * h = sum floor(q_ij q_ik / 2^16). */
typedef struct {
    int64_t dot[4];
    uint64_t xabs;
    int64_t h[6];
} lrt_gram_t;

/* the pairs of lrt_gram_t.h: what one and two 16-bit rotations of a row put beside each lane */
static const int lrt_gram_pairs[6][2] = {{0, 1}, {1, 2}, {2, 3}, {0, 3}, {0, 2}, {1, 3}};

/* v 2^-n rounded down (up = 0) or up, n >= 0 (gcc's >> on a negative value is arithmetic: a floor) */
static int64_t lrt_shr_dir(int64_t v, int n, int up)
{
    if (n >= 63) {
        return up ? (int64_t)(v > 0) : -(int64_t)(v < 0);
    }
    return up ? -((-v) >> n) : v >> n;
}

/* the bit of row t's two low bits in its plane word */
static const int32_t lrt_plane_shifts[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};

/* What the scan kernels form for rows from..len - 1 of a rank-4 basis (b = 2), added to *scan: column
 * 1's extended mantissas into e0, the column sums and the largest |q|. */
static void lrt_scan_rows(const int16_t *q, const uint8_t *plane, uint32_t from, uint32_t len, int32_t *e0,
                          lrt_scan_t *scan)
{
    uint64_t tail[ET_LRT_MAX_RANK];
    uint32_t i;
    int k;
    lrt_ext_unpack_b(q + (size_t)from * 4u, plane + from / 4u, len - from, 4, e0 + from, 2); /* from % 4 == 0 */
    lrt_cols_sums_r(q + (size_t)from * 4u, e0 + from, 4, len - from, tail);
    for (k = 0; k < 4; k++) {
        scan->sq[k] += tail[k];
    }
    for (i = 4u * from; i < 4u * len; i++) {
        uint32_t a = (uint32_t)(q[i] < 0 ? -(int32_t)q[i] : q[i]);
        scan->qmax = a > scan->qmax ? a : scan->qmax;
    }
}

/* lrt_gram_t's dot and xabs over rows from..len - 1, added to *out. */
static void lrt_dots_rows(const int16_t *q, const int8_t *s8, const uint8_t *u8, uint32_t from, uint32_t len,
                          lrt_gram_t *out)
{
    uint32_t i;
    int k;
    for (i = from; i < len; i++) {
        int32_t x = s8 != NULL ? (int32_t)s8[i] : (int32_t)u8[i];
        for (k = 0; k < 4; k++) {
            out->dot[k] += (int64_t)q[(size_t)i * 4u + (size_t)k] * x;
        }
        out->xabs += (uint64_t)(x < 0 ? -x : x);
    }
}

/* lrt_gram_t's h over rows from..len - 1, added to *out. */
static void lrt_gram_rows(const int16_t *q, uint32_t from, uint32_t len, lrt_gram_t *out)
{
    uint32_t i;
    int k;
    for (i = from; i < len; i++) {
        const int16_t *row = q + (size_t)i * 4u;
        for (k = 0; k < 6; k++) {
            out->h[k] += lrt_shr_dir((int64_t)row[lrt_gram_pairs[k][0]] * row[lrt_gram_pairs[k][1]], 16, 0);
        }
    }
}
#else
#define LRT_GRAM 0
#endif

#if ET_HOST_WIDE && !defined(ET_NO_LRT_AVX512)
#define LRT_AVX512 1
#include <immintrin.h>

static int lrt_host_avx512(void)
{
    return __builtin_cpu_supports("x86-64-v4");
}

/*
 * lrt_ext_unpack at rank 4 (b = 2) with AVX-512, 16 rows per step: the rows' 64 mantissas in two
 * vectors, column 1's 16 picked out by one vpermt2w and widened, and the rows' 32-bit word of the
 * plane (row t at bits 2t, the bytes little-endian) broadcast and shifted by 2t per lane: the
 * values lrt_ext_unpack_b forms byte by byte, a loop the compiler leaves scalar. With the rows in
 * registers it also forms the column sums lrt_cols_contract would make in a pass of its own (into
 * sq, as lrt_cols_within reads them): floor(q^2 / 2^16) is vpmulhw's high half of q q, summed per
 * column by vpmaddwd against 0/1 masks (int32 lanes: below 2^28 for 65535 rows), and column 1's
 * floor(E^2 / 2^16) in 64-bit lanes. Built by gcc on x86-64 only, run only where lrt_host_avx512()
 * says the CPU has AVX-512 (valgrind's CPU has not: instruction counts are the portable loops');
 * tests/test_lrt_multiversion.py builds these kernels out with -DET_NO_LRT_AVX512 and compares.
 */
__attribute__((target("arch=x86-64-v4"))) static void lrt_ext_unpack4_avx512(const int16_t *q, const uint8_t *plane,
                                                                            uint32_t len, int32_t *e0, lrt_scan_t *scan)
{
    static const int16_t pick[32] = {0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60,
                                     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const __m512i idx = _mm512_loadu_si512((const void *)pick);
    const __m512i sh = _mm512_loadu_si512((const void *)lrt_plane_shifts);
    const __m512i three = _mm512_set1_epi32(3);
    const __m512i odd = _mm512_set1_epi32(0x00010000); /* int16 pairs (0, 1): columns 2 and 4 */
    const __m512i even = _mm512_set1_epi32(0x00000001); /* (1, 0): columns 1 and 3 */
    __m512i s24 = _mm512_setzero_si512(); /* even lanes: column 2; odd lanes: column 4 */
    __m512i s13 = _mm512_setzero_si512(); /* odd lanes: column 3 */
    __m512i s1 = _mm512_setzero_si512();
    __m512i top = _mm512_setzero_si512(); /* |q| as unsigned 16-bit lanes: |-32768| = 32768 */
    uint64_t *sq = scan->sq;
    uint32_t g;
    for (g = 0; g + 16u <= len; g += 16u) {
        const int16_t *qg = q + (size_t)g * 4u;
        __m512i ra = _mm512_loadu_si512((const void *)qg);
        __m512i rb = _mm512_loadu_si512((const void *)(qg + 32));
        __m512i ha = _mm512_mulhi_epi16(ra, ra);
        __m512i hb = _mm512_mulhi_epi16(rb, rb);
        __m512i e;
        uint32_t w;
        memcpy(&w, plane + g / 4u, 4); /* little-endian: row g + t at bits 2t */
        top = _mm512_max_epu16(top, _mm512_max_epu16(_mm512_abs_epi16(ra), _mm512_abs_epi16(rb)));
        e = _mm512_slli_epi32(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(_mm512_permutex2var_epi16(ra, idx, rb))), 2);
        e = _mm512_add_epi32(e, _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32((int)w), sh), three));
        _mm512_storeu_si512((void *)(e0 + g), e);
        s24 = _mm512_add_epi32(s24, _mm512_add_epi32(_mm512_madd_epi16(ha, odd), _mm512_madd_epi16(hb, odd)));
        s13 = _mm512_add_epi32(s13, _mm512_add_epi32(_mm512_madd_epi16(ha, even), _mm512_madd_epi16(hb, even)));
        s1 = _mm512_add_epi64(s1, _mm512_srli_epi64(_mm512_mul_epi32(e, e), 16));
        e = _mm512_srli_epi64(e, 32);
        s1 = _mm512_add_epi64(s1, _mm512_srli_epi64(_mm512_mul_epi32(e, e), 16));
    }
    sq[0] = (uint64_t)_mm512_reduce_add_epi64(s1);
    sq[1] = (uint32_t)_mm512_mask_reduce_add_epi32(0x5555, s24);
    sq[2] = (uint32_t)_mm512_mask_reduce_add_epi32(0xAAAA, s13);
    sq[3] = (uint32_t)_mm512_mask_reduce_add_epi32(0xAAAA, s24);
    top = _mm512_max_epu32(_mm512_and_si512(top, _mm512_set1_epi32(0xFFFF)), _mm512_srli_epi32(top, 16));
    scan->qmax = (uint32_t)_mm512_reduce_max_epu32(top);
    lrt_scan_rows(q, plane, g, len, e0, scan); /* the rows past the last whole step */
}

/* lrt_ext_pack for b = 2 with AVX-512, 16 rows per 32-bit word of the plane: each row's low bits shifted
 * to bit 2t of its lane and the lanes ORed together; the rows past the last whole word byte-wise. */
__attribute__((target("arch=x86-64-v4"))) static void lrt_ext_pack2_avx512(const int32_t *e0, uint32_t len,
                                                                          uint8_t *plane)
{
    const __m512i sh = _mm512_loadu_si512((const void *)lrt_plane_shifts);
    const __m512i three = _mm512_set1_epi32(3);
    uint32_t g;
    for (g = 0; g + 16u <= len; g += 16u) {
        __m512i lo = _mm512_and_si512(_mm512_loadu_si512((const void *)(e0 + g)), three);
        uint32_t w = (uint32_t)_mm512_reduce_or_epi32(_mm512_sllv_epi32(lo, sh));
        memcpy(plane + g / 4u, &w, 4); /* little-endian: row g + t at bits 2t */
    }
    lrt_ext_pack_b(e0 + g, len - g, plane + g / 4u, 2);
}

/*
 * lrt_gram_t's dot products and xabs, 16 rows per step: the input, widened to int16 and put beside
 * each row's even or odd lanes (vpermw with a zeroing mask), gives them by vpmaddwd, one product per
 * int32 lane (below 2^23), widened into int64 every 32 steps; vpsadbw sums |X|.
 */
__attribute__((target("arch=x86-64-v4"))) static void lrt_dots4_avx512(const int16_t *q, const int8_t *s8,
                                                                      const uint8_t *u8, uint32_t len,
                                                                      lrt_gram_t *out)
{
    static const int16_t rep[32] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
                                    4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7};
    const __m512i rep_a = _mm512_loadu_si512((const void *)rep);
    const __m512i rep_b = _mm512_add_epi16(rep_a, _mm512_set1_epi16(8));
    const __mmask32 lanes_even = 0x55555555u;
    const __mmask32 lanes_odd = 0xAAAAAAAAu;
    __m512i d64[4]; /* int64 lanes: the dot products of columns 1..4 */
    __m128i xabs = _mm_setzero_si128();
    uint32_t g = 0;
    int k;
    for (k = 0; k < 4; k++) {
        d64[k] = _mm512_setzero_si512();
    }
    while (g + 16u <= len) {
        __m512i e32 = _mm512_setzero_si512(); /* int32 lanes per row: columns 1, 3 */
        __m512i o32 = _mm512_setzero_si512(); /* columns 2, 4 */
        uint32_t steps = 0;
        for (; g + 16u <= len && steps < 32u; g += 16u, steps++) {
            const int16_t *qg = q + (size_t)g * 4u;
            __m512i ra = _mm512_loadu_si512((const void *)qg);
            __m512i rb = _mm512_loadu_si512((const void *)(qg + 32));
            __m128i xb = _mm_loadu_si128((const __m128i *)(s8 != NULL ? (const void *)(s8 + g) : (const void *)(u8 + g)));
            __m512i xw = _mm512_castsi256_si512(s8 != NULL ? _mm256_cvtepi8_epi16(xb) : _mm256_cvtepu8_epi16(xb));
            e32 = _mm512_add_epi32(e32, _mm512_add_epi32(
                                            _mm512_madd_epi16(ra, _mm512_maskz_permutexvar_epi16(lanes_even, rep_a, xw)),
                                            _mm512_madd_epi16(rb, _mm512_maskz_permutexvar_epi16(lanes_even, rep_b, xw))));
            o32 = _mm512_add_epi32(o32, _mm512_add_epi32(
                                            _mm512_madd_epi16(ra, _mm512_maskz_permutexvar_epi16(lanes_odd, rep_a, xw)),
                                            _mm512_madd_epi16(rb, _mm512_maskz_permutexvar_epi16(lanes_odd, rep_b, xw))));
            xabs = _mm_add_epi64(xabs, _mm_sad_epu8(s8 != NULL ? _mm_abs_epi8(xb) : xb, _mm_setzero_si128()));
        }
        /* at most 32 steps: each int32 lane below 2^29 (64 products below 2^23); widened, a row's low
         * int32 sign-extended and its high one shifted down */
        d64[0] = _mm512_add_epi64(d64[0], _mm512_srai_epi64(_mm512_slli_epi64(e32, 32), 32));
        d64[2] = _mm512_add_epi64(d64[2], _mm512_srai_epi64(e32, 32));
        d64[1] = _mm512_add_epi64(d64[1], _mm512_srai_epi64(_mm512_slli_epi64(o32, 32), 32));
        d64[3] = _mm512_add_epi64(d64[3], _mm512_srai_epi64(o32, 32));
    }
    for (k = 0; k < 4; k++) {
        out->dot[k] = _mm512_reduce_add_epi64(d64[k]);
    }
    out->xabs = (uint64_t)_mm_cvtsi128_si64(xabs) + (uint64_t)_mm_extract_epi64(xabs, 1);
    lrt_dots_rows(q, s8, u8, g, len, out); /* the rows past the last whole step */
}

/*
 * lrt_gram_t's h, 16 rows per step: each row's four mantissas rotated by one and by two lanes within
 * its 64 bits (vprorq) and multiplied with the row by vpmulhw give every off-diagonal product's
 * floor(q q' / 2^16); vpmaddwd against 0/1 masks sums them per column pair in int32 lanes (below 2^30
 * for 65535 rows).
 */
__attribute__((target("arch=x86-64-v4"))) static void lrt_gram4_avx512(const int16_t *q, uint32_t len,
                                                                      lrt_gram_t *out)
{
    const __m512i odd = _mm512_set1_epi32(0x00010000);  /* int16 pairs (0, 1) */
    const __m512i even = _mm512_set1_epi32(0x00000001); /* (1, 0) */
    __m512i h1e = _mm512_setzero_si512(); /* per row: int32 lanes h01, h23 */
    __m512i h1o = _mm512_setzero_si512(); /* h12, h30 */
    __m512i h2e = _mm512_setzero_si512(); /* h02 (and h20) */
    __m512i h2o = _mm512_setzero_si512(); /* h13 (and h31) */
    uint32_t g;
    for (g = 0; g + 16u <= len; g += 16u) {
        const int16_t *qg = q + (size_t)g * 4u;
        __m512i ra = _mm512_loadu_si512((const void *)qg);
        __m512i rb = _mm512_loadu_si512((const void *)(qg + 32));
        __m512i pa = _mm512_mulhi_epi16(ra, _mm512_ror_epi64(ra, 16));
        __m512i pb = _mm512_mulhi_epi16(rb, _mm512_ror_epi64(rb, 16));
        __m512i sa = _mm512_mulhi_epi16(ra, _mm512_ror_epi64(ra, 32));
        __m512i sb = _mm512_mulhi_epi16(rb, _mm512_ror_epi64(rb, 32));
        h1e = _mm512_add_epi32(h1e, _mm512_add_epi32(_mm512_madd_epi16(pa, even), _mm512_madd_epi16(pb, even)));
        h1o = _mm512_add_epi32(h1o, _mm512_add_epi32(_mm512_madd_epi16(pa, odd), _mm512_madd_epi16(pb, odd)));
        h2e = _mm512_add_epi32(h2e, _mm512_add_epi32(_mm512_madd_epi16(sa, even), _mm512_madd_epi16(sb, even)));
        h2o = _mm512_add_epi32(h2o, _mm512_add_epi32(_mm512_madd_epi16(sa, odd), _mm512_madd_epi16(sb, odd)));
    }
    out->h[0] = _mm512_mask_reduce_add_epi32(0x5555, h1e); /* h01 */
    out->h[1] = _mm512_mask_reduce_add_epi32(0x5555, h1o); /* h12 */
    out->h[2] = _mm512_mask_reduce_add_epi32(0xAAAA, h1e); /* h23 */
    out->h[3] = _mm512_mask_reduce_add_epi32(0xAAAA, h1o); /* h30 */
    out->h[4] = _mm512_mask_reduce_add_epi32(0x5555, h2e); /* h02 */
    out->h[5] = _mm512_mask_reduce_add_epi32(0x5555, h2o); /* h13 */
    lrt_gram_rows(q, g, len, out); /* the rows past the last whole step */
}
#else
#define LRT_AVX512 0
#endif

#if LRT_AVX2
/* Column c (0..3) of eight rank-4 rows (r0: rows 0..3, r1: rows 4..7, a row per 64-bit lane) as int32. */
__attribute__((target("avx2"), always_inline)) static inline __m256i lrt_col8_avx2(__m256i r0, __m256i r1, const int c)
{
    __m256i a = c <= 1 ? r0 : _mm256_srli_epi64(r0, 32);
    __m256i b = c <= 1 ? r1 : _mm256_srli_epi64(r1, 32);
    if (c == 0 || c == 2) {
        a = _mm256_slli_epi32(a, 16);
        b = _mm256_slli_epi32(b, 16);
    }
    a = _mm256_srai_epi32(a, 16); /* the column, sign-extended, in each lane's low 32 bits */
    b = _mm256_srai_epi32(b, 16);
    /* per half: rows 0, 1, 4, 5 | 2, 3, 6, 7; the 64-bit permute puts them in order */
    a = _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), _MM_SHUFFLE(2, 0, 2, 0)));
    return _mm256_permute4x64_epi64(a, _MM_SHUFFLE(3, 1, 2, 0));
}

/* The int32 lanes of v (eight) summed: the even ones (even = 1) or the odd ones, widened. */
__attribute__((target("avx2"))) static int64_t lrt_lanes_sum_avx2(__m256i v, int even)
{
    int32_t l[8];
    int64_t sum = 0;
    int t;
    _mm256_storeu_si256((__m256i *)(void *)l, v);
    for (t = even ? 0 : 1; t < 8; t += 2) {
        sum += l[t];
    }
    return sum;
}

/* An MGS sweep's step after the update v of eight residuals (res: where they go): stored, and their dot
 * products with column cn (1..3) of the rows r0, r1 (dot_next) or their squares' high and low halves
 * added into the 64-bit lanes of *acc and *acc_lo. */
__attribute__((target("avx2"), always_inline)) static inline void lrt_sweep_step_avx2(int32_t *res, __m256i v, __m256i r0,
                                                                                  __m256i r1, int cn, int dot_next,
                                                                                  __m256i *acc, __m256i *acc_lo)
{
    const __m256i low32 = _mm256_set1_epi64x(0xFFFFFFFF);
    __m256i v_odd = _mm256_srli_epi64(v, 32);
    _mm256_storeu_si256((__m256i *)(void *)res, v);
    if (dot_next) {
        __m256i qn = cn == 1 ? lrt_col8_avx2(r0, r1, 1) : cn == 2 ? lrt_col8_avx2(r0, r1, 2) : lrt_col8_avx2(r0, r1, 3);
        *acc = _mm256_add_epi64(*acc, _mm256_add_epi64(_mm256_mul_epi32(qn, v),
                                                       _mm256_mul_epi32(_mm256_srli_epi64(qn, 32), v_odd)));
    } else {
        __m256i sq = _mm256_mul_epi32(v, v);
        __m256i sq_odd = _mm256_mul_epi32(v_odd, v_odd);
        *acc = _mm256_add_epi64(*acc, _mm256_add_epi64(_mm256_srli_epi64(sq, 32), _mm256_srli_epi64(sq_odd, 32)));
        *acc_lo = _mm256_add_epi64(*acc_lo, _mm256_add_epi64(_mm256_and_si256(sq, low32), _mm256_and_si256(sq_odd, low32)));
    }
}

/* The sum of v's four 64-bit lanes, modulo 2^64. */
__attribute__((target("avx2"))) static uint64_t lrt_lanes64_sum_avx2(__m256i v)
{
    uint64_t l[4];
    _mm256_storeu_si256((__m256i *)(void *)l, v);
    return l[0] + l[1] + l[2] + l[3];
}

/*
 * lrt_ext_unpack4_avx512 for CPUs with AVX2 but no AVX-512, eight rows per step: column 1 by
 * lrt_col8_avx2, the rows' 16 bits of the plane broadcast and shifted by 2t per lane; the column sums
 * (vpmulhw and vpmaddwd, column 1's in 64-bit lanes by vpmuldq) and the largest |q| as there.
 */
__attribute__((target("avx2"))) static void lrt_ext_unpack4_avx2(const int16_t *q, const uint8_t *plane, uint32_t len,
                                                                 int32_t *e0, lrt_scan_t *scan)
{
    const __m256i sh = _mm256_loadu_si256((const __m256i *)(const void *)lrt_plane_shifts);
    const __m256i three = _mm256_set1_epi32(3);
    const __m256i odd = _mm256_set1_epi32(0x00010000); /* int16 pairs (0, 1): columns 2 and 4 */
    const __m256i even = _mm256_set1_epi32(0x00000001); /* (1, 0): columns 1 and 3 */
    __m256i s24 = _mm256_setzero_si256(); /* even lanes: column 2; odd lanes: column 4 */
    __m256i s13 = _mm256_setzero_si256(); /* odd lanes: column 3 */
    __m256i s1 = _mm256_setzero_si256();
    __m256i top = _mm256_setzero_si256(); /* |q| as unsigned 16-bit lanes: |-32768| = 32768 */
    uint64_t *sq = scan->sq;
    uint16_t tops[16];
    uint32_t g;
    int k;
    for (g = 0; g + 8u <= len; g += 8u) {
        const int16_t *qg = q + (size_t)g * 4u;
        __m256i ra = _mm256_loadu_si256((const __m256i *)(const void *)qg);
        __m256i rb = _mm256_loadu_si256((const __m256i *)(const void *)(qg + 16));
        __m256i ha = _mm256_mulhi_epi16(ra, ra);
        __m256i hb = _mm256_mulhi_epi16(rb, rb);
        __m256i e;
        uint16_t w;
        memcpy(&w, plane + g / 4u, 2); /* little-endian: row g + t at bits 2t */
        top = _mm256_max_epu16(top, _mm256_max_epu16(_mm256_abs_epi16(ra), _mm256_abs_epi16(rb)));
        e = _mm256_slli_epi32(lrt_col8_avx2(ra, rb, 0), 2);
        e = _mm256_add_epi32(e, _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)w), sh), three));
        _mm256_storeu_si256((__m256i *)(void *)(e0 + g), e);
        s24 = _mm256_add_epi32(s24, _mm256_add_epi32(_mm256_madd_epi16(ha, odd), _mm256_madd_epi16(hb, odd)));
        s13 = _mm256_add_epi32(s13, _mm256_add_epi32(_mm256_madd_epi16(ha, even), _mm256_madd_epi16(hb, even)));
        s1 = _mm256_add_epi64(s1, _mm256_srli_epi64(_mm256_mul_epi32(e, e), 16));
        e = _mm256_srli_epi64(e, 32);
        s1 = _mm256_add_epi64(s1, _mm256_srli_epi64(_mm256_mul_epi32(e, e), 16));
    }
    sq[0] = lrt_lanes64_sum_avx2(s1);
    sq[1] = (uint64_t)lrt_lanes_sum_avx2(s24, 1);
    sq[2] = (uint64_t)lrt_lanes_sum_avx2(s13, 0);
    sq[3] = (uint64_t)lrt_lanes_sum_avx2(s24, 0);
    _mm256_storeu_si256((__m256i *)(void *)tops, top);
    scan->qmax = 0;
    for (k = 0; k < 16; k++) {
        scan->qmax = tops[k] > scan->qmax ? tops[k] : scan->qmax;
    }
    lrt_scan_rows(q, plane, g, len, e0, scan); /* the rows past the last whole step */
}

/*
 * lrt_dots4_avx512 for CPUs with AVX2 but no AVX-512, eight rows per step: the input widened to int32,
 * each value beside its row's even int16 lanes (as (X, 0) pairs) and its odd ones (as (0, X)) by vpermd,
 * vpmaddwd one product per int32 lane (below 2^23), widened into int64 every 32 steps by vpmuldq with 1;
 * vpsadbw sums |X|.
 */
__attribute__((target("avx2"))) static void lrt_dots4_avx2(const int16_t *q, const int8_t *s8, const uint8_t *u8,
                                                           uint32_t len, lrt_gram_t *out)
{
    const __m256i rep_a = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256i rep_b = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
    const __m256i low16 = _mm256_set1_epi32(0xFFFF);
    const __m256i one = _mm256_set1_epi64x(1);
    __m256i d64[4]; /* int64 lanes: the dot products of columns 1..4 */
    __m128i xabs = _mm_setzero_si128();
    uint32_t g = 0;
    int k;
    for (k = 0; k < 4; k++) {
        d64[k] = _mm256_setzero_si256();
    }
    while (g + 8u <= len) {
        __m256i e32 = _mm256_setzero_si256(); /* int32 lanes per row: columns 1, 3 */
        __m256i o32 = _mm256_setzero_si256(); /* columns 2, 4 */
        uint32_t steps = 0;
        for (; g + 8u <= len && steps < 32u; g += 8u, steps++) {
            const int16_t *qg = q + (size_t)g * 4u;
            __m256i ra = _mm256_loadu_si256((const __m256i *)(const void *)qg);
            __m256i rb = _mm256_loadu_si256((const __m256i *)(const void *)(qg + 16));
            __m128i xb = _mm_loadl_epi64((const __m128i *)(s8 != NULL ? (const void *)(s8 + g) : (const void *)(u8 + g)));
            __m256i x32 = s8 != NULL ? _mm256_cvtepi8_epi32(xb) : _mm256_cvtepu8_epi32(xb);
            __m256i xa = _mm256_permutevar8x32_epi32(x32, rep_a); /* rows 0..3: (X, X) per row */
            __m256i xc = _mm256_permutevar8x32_epi32(x32, rep_b); /* rows 4..7 */
            e32 = _mm256_add_epi32(e32, _mm256_add_epi32(_mm256_madd_epi16(ra, _mm256_and_si256(xa, low16)),
                                                         _mm256_madd_epi16(rb, _mm256_and_si256(xc, low16))));
            o32 = _mm256_add_epi32(o32, _mm256_add_epi32(_mm256_madd_epi16(ra, _mm256_slli_epi32(xa, 16)),
                                                         _mm256_madd_epi16(rb, _mm256_slli_epi32(xc, 16))));
            xabs = _mm_add_epi64(xabs, _mm_sad_epu8(s8 != NULL ? _mm_abs_epi8(xb) : xb, _mm_setzero_si128()));
        }
        /* at most 32 steps: each int32 lane below 2^29 (64 products below 2^23); widened, a row's low
         * int32 and its high one, each sign-extended by vpmuldq with 1 */
        d64[0] = _mm256_add_epi64(d64[0], _mm256_mul_epi32(e32, one));
        d64[2] = _mm256_add_epi64(d64[2], _mm256_mul_epi32(_mm256_srli_epi64(e32, 32), one));
        d64[1] = _mm256_add_epi64(d64[1], _mm256_mul_epi32(o32, one));
        d64[3] = _mm256_add_epi64(d64[3], _mm256_mul_epi32(_mm256_srli_epi64(o32, 32), one));
    }
    for (k = 0; k < 4; k++) {
        out->dot[k] = (int64_t)lrt_lanes64_sum_avx2(d64[k]);
    }
    out->xabs = (uint64_t)_mm_cvtsi128_si64(xabs); /* the 8 bytes' sum is in the low half */
    lrt_dots_rows(q, s8, u8, g, len, out); /* the rows past the last whole step */
}

/*
 * lrt_gram4_avx512 for CPUs with AVX2 but no AVX-512, eight rows per step: the rotations of each row's
 * 64 bits by one 16-bit lane (vpshufb) and by two (vpshufd), vpmulhw and vpmaddwd as there.
 */
__attribute__((target("avx2"))) static void lrt_gram4_avx2(const int16_t *q, uint32_t len, lrt_gram_t *out)
{
    const __m256i odd = _mm256_set1_epi32(0x00010000);  /* int16 pairs (0, 1) */
    const __m256i even = _mm256_set1_epi32(0x00000001); /* (1, 0) */
    const __m256i ror16 = _mm256_setr_epi8(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9,
                                           2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9);
    __m256i h1e = _mm256_setzero_si256(); /* per row: int32 lanes h01, h23 */
    __m256i h1o = _mm256_setzero_si256(); /* h12, h30 */
    __m256i h2e = _mm256_setzero_si256(); /* h02 (and h20) */
    __m256i h2o = _mm256_setzero_si256(); /* h13 (and h31) */
    uint32_t g;
    for (g = 0; g + 8u <= len; g += 8u) {
        const int16_t *qg = q + (size_t)g * 4u;
        __m256i ra = _mm256_loadu_si256((const __m256i *)(const void *)qg);
        __m256i rb = _mm256_loadu_si256((const __m256i *)(const void *)(qg + 16));
        __m256i pa = _mm256_mulhi_epi16(ra, _mm256_shuffle_epi8(ra, ror16));
        __m256i pb = _mm256_mulhi_epi16(rb, _mm256_shuffle_epi8(rb, ror16));
        __m256i sa = _mm256_mulhi_epi16(ra, _mm256_shuffle_epi32(ra, _MM_SHUFFLE(2, 3, 0, 1)));
        __m256i sb = _mm256_mulhi_epi16(rb, _mm256_shuffle_epi32(rb, _MM_SHUFFLE(2, 3, 0, 1)));
        h1e = _mm256_add_epi32(h1e, _mm256_add_epi32(_mm256_madd_epi16(pa, even), _mm256_madd_epi16(pb, even)));
        h1o = _mm256_add_epi32(h1o, _mm256_add_epi32(_mm256_madd_epi16(pa, odd), _mm256_madd_epi16(pb, odd)));
        h2e = _mm256_add_epi32(h2e, _mm256_add_epi32(_mm256_madd_epi16(sa, even), _mm256_madd_epi16(sb, even)));
        h2o = _mm256_add_epi32(h2o, _mm256_add_epi32(_mm256_madd_epi16(sa, odd), _mm256_madd_epi16(sb, odd)));
    }
    out->h[0] = lrt_lanes_sum_avx2(h1e, 1); /* h01 */
    out->h[1] = lrt_lanes_sum_avx2(h1o, 1); /* h12 */
    out->h[2] = lrt_lanes_sum_avx2(h1e, 0); /* h23 */
    out->h[3] = lrt_lanes_sum_avx2(h1o, 0); /* h30 */
    out->h[4] = lrt_lanes_sum_avx2(h2e, 1); /* h02 */
    out->h[5] = lrt_lanes_sum_avx2(h2o, 1); /* h13 */
    lrt_gram_rows(q, g, len, out); /* the rows past the last whole step */
}
#endif

/* Column 1 of a basis as extended mantissas, e0_i = q_i0 2^b + lo_i (|e0_i| < 2^17), into int32 scratch.
 * Returns 1 where it also filled *scan, else 0. */
static int lrt_ext_unpack(const int16_t *q, const uint8_t *plane, uint32_t len, int rank, int32_t *e0,
                          lrt_scan_t *scan)
{
    int b = lrt_low_bits(rank);
    uint32_t i;
    (void)scan;
    if (!LRT_WIDE && b != 0) { /* firmware: one copy */
        lrt_ext_unpack_b(q, plane, len, rank, e0, b);
#if LRT_AVX512
    } else if (rank == 4 && lrt_host_avx512()) {
        lrt_ext_unpack4_avx512(q, plane, len, e0, scan);
        return 1;
#endif
#if LRT_AVX2
    } else if (rank == 4 && lrt_host_avx2_only()) {
        lrt_ext_unpack4_avx2(q, plane, len, e0, scan);
        return 1;
#endif
    } else if (b == 2) {
        lrt_ext_unpack_b(q, plane, len, rank, e0, 2);
    } else if (b == 1) {
        lrt_ext_unpack_b(q, plane, len, rank, e0, 1);
    } else {
        for (i = 0; i < len; i++) {
            e0[i] = q[(size_t)i * rank];
        }
    }
    return 0;
}

/* The plane from new extended mantissas (their low b bits; two's complement, so e0 & mask is lo). */
static void lrt_ext_pack(const int32_t *e0, uint32_t len, int rank, uint8_t *plane)
{
    int b = lrt_low_bits(rank);
    if (!LRT_WIDE && b != 0) { /* firmware: one copy */
        lrt_ext_pack_b(e0, len, plane, b);
#if LRT_AVX512
    } else if (b == 2 && lrt_host_avx512()) {
        lrt_ext_pack2_avx512(e0, len, plane);
#endif
    } else if (b == 2) {
        lrt_ext_pack_b(e0, len, plane, 2);
    } else if (b == 1) {
        lrt_ext_pack_b(e0, len, plane, 1);
    }
}

/* ---- configuration and state -------------------------------------------------- */

et_status_t et_lrt_config_default(et_lrt_config_t *cfg)
{
    if (cfg == NULL) {
        return ET_ERR_ARG;
    }
    memset(cfg, 0, sizeof(*cfg));
    cfg->rank = 4;
    cfg->unbiased = 1;
    cfg->maxnorm = 1;
    cfg->gs_passes = 2;
    cfg->batch_conv = 10;
    cfg->batch_dense = 100;
    cfg->eta0_q24 = 167772; /* 0.01 * 2^24, rounded */
    cfg->rho_min_ppm = 10000;
    cfg->kappa_th = 100;
    return ET_OK;
}

et_status_t et_lrt_config_check(const et_lrt_config_t *cfg)
{
    if (cfg == NULL || cfg->rank < 1 || cfg->rank > ET_LRT_MAX_RANK || cfg->unbiased > 1 || cfg->maxnorm > 1 ||
        cfg->gs_passes < 1 || cfg->gs_passes > 2 || cfg->batch_conv < 1 || cfg->batch_dense < 1 ||
        cfg->eta0_q24 < 1 || cfg->eta0_q24 > (UINT32_C(1) << 24) || cfg->rho_min_ppm > 1000000u ||
        cfg->kappa_th > (uint32_t)INT32_MAX || cfg->conv_term_batch > ET_LRT_BATCH_MAX) {
        return ET_ERR_ARG;
    }
    return ET_OK;
}

static int lrt_dims_ok(uint32_t n, uint32_t m, uint32_t rank)
{
    return n >= 1 && n <= ET_LRT_MAX_DIM && m >= 1 && m <= ET_LRT_MAX_DIM && rank >= 1 && rank <= ET_LRT_MAX_RANK;
}

/* c_mant descending and at most 2^31, as the header documents: the core's exponent is taken
 * from c_mant[0], so a larger later entry would overflow the core the SVD accepts. */
static int lrt_c_ok(const et_lrt_state_t *st)
{
    int k;
    if (st->c_mant[0] > (UINT32_C(1) << 31)) {
        return 0;
    }
    for (k = 1; k < st->rank; k++) {
        if (st->c_mant[k] > st->c_mant[k - 1]) {
            return 0;
        }
    }
    return 1;
}

/* A basis' multiplier: 0 for an empty basis, else 2^15 .. 2^16 - 1. */
static int lrt_basis_f_ok(int e, uint32_t f)
{
    return e == 0 ? f == 0 : f >= LRT_F_MIN;
}

/* A state as et_lrt_state_init and et_lrt_accumulate_* leave it. */
static int lrt_state_ok(const et_lrt_state_t *st)
{
    return st != NULL && lrt_dims_ok(st->n, st->m, st->rank) && st->kind <= ET_LRT_CONV &&
           lrt_basis_exp_ok(st->exp_l) && lrt_basis_exp_ok(st->exp_r) && lrt_basis_f_ok(st->exp_l, st->f_l) &&
           lrt_basis_f_ok(st->exp_r, st->f_r) && lrt_c_ok(st);
}

et_status_t et_lrt_state_get_size(uint32_t n, uint32_t m, uint32_t rank, size_t *bytes)
{
    if (bytes == NULL || !lrt_dims_ok(n, m, rank)) {
        return ET_ERR_ARG;
    }
    *bytes = sizeof(et_lrt_state_t) + (size_t)2 * rank * ((size_t)n + m) + lrt_plane_bytes(n, (int)rank) +
             lrt_plane_bytes(m, (int)rank);
    return ET_OK;
}

et_status_t et_lrt_state_init(void *mem, size_t size, uint32_t n, uint32_t m, int kind,
                              const et_lrt_config_t *cfg, et_lrt_state_t **state)
{
    size_t need;
    et_lrt_state_t *st;
    if (mem == NULL || state == NULL || ((uintptr_t)mem & 3u) != 0 || (kind != ET_LRT_DENSE && kind != ET_LRT_CONV) ||
        et_lrt_config_check(cfg) != ET_OK || et_lrt_state_get_size(n, m, cfg->rank, &need) != ET_OK) {
        return ET_ERR_ARG;
    }
    if (size < need) {
        return ET_ERR_NOMEM;
    }
    memset(mem, 0, need);
    st = (et_lrt_state_t *)mem;
    st->n = (uint16_t)n;
    st->m = (uint16_t)m;
    st->rank = cfg->rank;
    st->kind = (uint8_t)kind;
    *state = st;
    return ET_OK;
}

et_status_t et_lrt_bases(et_lrt_state_t *state, int16_t **ql, int16_t **qr)
{
    if (!lrt_state_ok(state) || ql == NULL || qr == NULL) {
        return ET_ERR_ARG;
    }
    *ql = lrt_ql(state);
    *qr = lrt_qr(state);
    return ET_OK;
}

et_status_t et_lrt_reset(et_lrt_state_t *state)
{
    if (!lrt_state_ok(state)) {
        return ET_ERR_ARG;
    }
    memset(lrt_ql(state), 0, (size_t)2 * state->rank * ((size_t)state->n + state->m) +
                                 lrt_plane_bytes(state->n, state->rank) + lrt_plane_bytes(state->m, state->rank));
    memset(state->c_mant, 0, sizeof(state->c_mant));
    state->b_eff = 0;
    state->terms = 0;
    state->skipped = 0;
    state->exp_l = 0;
    state->exp_r = 0;
    state->f_l = 0;
    state->f_r = 0;
    state->c_exp = 0;
    return ET_OK;
}

et_status_t et_lrt_accumulate_get_buffer_size(uint32_t n_max, uint32_t m_max, uint32_t rank, size_t *bytes)
{
    size_t q = (size_t)rank + 1;
    if (bytes == NULL || !lrt_dims_ok(n_max, m_max, rank)) {
        return ET_ERR_ARG;
    }
    *bytes = 4 * (2 * ((size_t)n_max + m_max) + 2 * q * q + 3 * q * rank); /* residuals, column 1 (int32) */
    return ET_OK;
}

/* ---- projection of one side (modified Gram-Schmidt) ------------------------------ */

/*
 * sum(res^2), or UINT64_MAX when it does not fit (every square is >= 0, so the running sum
 * overflows exactly when the total does). Each square (< 2^62) is summed in two halves, high
 * and low 32 bits: neither sum can overflow for len <= 65535, and the loop has no exit.
 */
static uint64_t lrt_sumsq_total(uint64_t hi, uint64_t lo)
{
    hi += lo >> 32;
    return hi >= (UINT64_C(1) << 32) ? UINT64_MAX : (hi << 32) + (lo & 0xFFFFFFFFu);
}

ET_HOT static uint64_t lrt_sumsq(const int32_t *res, uint32_t len)
{
    uint64_t hi = 0;
    uint64_t lo = 0;
    uint32_t i;
    for (i = 0; i < len; i++) {
        uint64_t sq = (uint64_t)((int64_t)res[i] * res[i]);
        hi += sq >> 32;
        lo += sq & 0xFFFFFFFFu;
    }
    return lrt_sumsq_total(hi, lo);
}

/* The shift that brings a residual's sum of squares s into [2^54, 2^56). */
static int lrt_norm_k(uint64_t s)
{
    int bl;
    if (s == 0) {
        return 0;
    }
    bl = lrt_bitlen(s);
    return bl <= LRT_RES_BITS ? (LRT_RES_BITS - bl) / 2 : -((bl - LRT_RES_BITS + 1) / 2);
}

/*
 * res <<= k (k < 0: rounding right shift), given s = sum(res^2); returns k and leaves the
 * new sum of squares in *s_new. Nothing saturates: k > 0 leaves sum(res^2) below 2^56, so
 * every |res_i| 2^k < 2^28, and the new sum is exactly s 2^2k (no pass to sum it); k < 0 is a
 * right shift (by 1..4: s <= UINT64_MAX) of an int32, rounded, so its squares are summed again.
 */
ET_HOT static int lrt_rescale(int32_t *res, uint32_t len, uint64_t s, uint64_t *s_new)
{
    int k = lrt_norm_k(s);
    uint64_t hi = 0;
    uint64_t lo = 0;
    uint32_t i;
    if (k == 0) {
        *s_new = s;
        return 0;
    }
    if (k > 0) {
        for (i = 0; i < len; i++) {
            res[i] = (int32_t)((uint32_t)res[i] << k);
        }
        *s_new = s << (2 * k);
        return k;
    }
    for (i = 0; i < len; i++) {
        int64_t v = lrt_round_shift_sm(res[i], -k);
        uint64_t sq = (uint64_t)(v * v);
        res[i] = (int32_t)v;
        hi += sq >> 32;
        lo += sq & 0xFFFFFFFFu;
    }
    *s_new = lrt_sumsq_total(hi, lo);
    return k;
}

/* dot(column j of q, res): |dot| < 2^62 for any len <= 65535 */
LRT_INLINE int64_t lrt_col_res_dot(const int16_t *q, const int rank, int j, const int32_t *res, uint32_t len)
{
    int64_t dot = 0;
    uint32_t i;
    for (i = 0; i < len; i++) {
        dot += (int64_t)(int32_t)q[(size_t)i * rank + j] * res[i];
    }
    return dot;
}

/* dot(e0, res) for a column as int32 extended mantissas (|e0| < 2^17, |res| < 2^28): below 2^61 */
LRT_INLINE int64_t lrt_e0_res_dot(const int32_t *e0, const int32_t *res, uint32_t len)
{
    int64_t dot = 0;
    uint32_t i;
    for (i = 0; i < len; i++) {
        dot += (int64_t)e0[i] * res[i];
    }
    return dot;
}

/*
 * lrt_rescale, and the dot product of the new res with column 1 (e0, extended mantissas) in *dot: one
 * sweep where the shift is a left one (the usual case: a pass leaves its residual's sum of squares
 * below the 2^56 it started under).
 */
ET_HOT static int lrt_rescale_dot(int32_t *res, uint32_t len, uint64_t s, uint64_t *s_new, const int32_t *e0,
                                  int64_t *dot)
{
    int k = lrt_norm_k(s);
    int64_t d = 0;
    uint32_t i;
    if (k <= 0) {
        k = lrt_rescale(res, len, s, s_new);
        *dot = lrt_e0_res_dot(e0, res, len);
        return k;
    }
    for (i = 0; i < len; i++) {
        int32_t v = (int32_t)((uint32_t)res[i] << k);
        res[i] = v;
        d += (int64_t)e0[i] * v;
    }
    *dot = d;
    *s_new = s << (2 * k);
    return k;
}

/* sum of squares of an 8-bit input (s8 or u8): below 2^32 for len <= 65535 (255^2 65535 < 2^32) */
ET_HOT static uint32_t lrt_input_sumsq(const int8_t *s8, const uint8_t *u8, uint32_t len)
{
    uint32_t s = 0;
    uint32_t i;
    if (!LRT_WIDE) { /* firmware: one loop */
        for (i = 0; i < len; i++) {
            int32_t v = s8 != NULL ? (int32_t)s8[i] : (int32_t)u8[i];
            s += (uint32_t)(v * v);
        }
        return s;
    }
    if (s8 != NULL) {
        for (i = 0; i < len; i++) {
            s += (uint32_t)((int32_t)s8[i] * s8[i]);
        }
        return s;
    }
    for (i = 0; i < len; i++) {
        s += (uint32_t)u8[i] * u8[i];
    }
    return s;
}

/*
 * res = input 2^k (k > 0 from lrt_norm_k of its sum of squares, below 2^32: so |res_i| < 2^28) and,
 * where e0 is given, the dot product of res with column 1 (extended mantissas): the input's rescale
 * and the first pass' first dot product in one sweep.
 */
ET_HOT static int64_t lrt_input_load(const int8_t *s8, const uint8_t *u8, uint32_t len, int k, int32_t *res,
                                     const int32_t *e0)
{
    int64_t d = 0;
    uint32_t i;
    if (!LRT_WIDE) { /* firmware: one loop */
        for (i = 0; i < len; i++) {
            int32_t v = (s8 != NULL ? (int32_t)s8[i] : (int32_t)u8[i]) * ((int32_t)1 << k);
            res[i] = v;
            d += e0 != NULL ? (int64_t)e0[i] * v : 0;
        }
        return d;
    }
    if (e0 == NULL) {
        for (i = 0; i < len; i++) {
            res[i] = s8 != NULL ? (int32_t)s8[i] * ((int32_t)1 << k) : (int32_t)u8[i] << k;
        }
        return 0;
    }
    if (s8 != NULL) {
        for (i = 0; i < len; i++) {
            int32_t v = (int32_t)s8[i] * ((int32_t)1 << k);
            res[i] = v;
            d += (int64_t)e0[i] * v;
        }
        return d;
    }
    for (i = 0; i < len; i++) {
        int32_t v = (int32_t)u8[i] << k;
        res[i] = v;
        d += (int64_t)e0[i] * v;
    }
    return d;
}

/*
 * One sweep for |a| < 2^31 (valid bases have |a_j| < 2^29): res_i -= round(a q_ij 2^-sh), the
 * product in 32 x 32 -> 64 bits. The rounding is taken at an offset, with logical shifts only
 * (AVX2 has no 64-bit arithmetic shift): x + 2^62 > 0 for |x| < 2^46, and 2^sh divides 2^62, so
 * (x + 2^62 + half - [x < 0]) >> sh is round(x 2^-sh) + 2^(62-sh), the rounding rule's
 * floor(x 2^-sh) + ((r + half - [x < 0]) >> sh) plus a constant that the update takes off again.
 * clamp = 0 when the caller has shown that no result leaves int32 (then the saturation is a no-op).
 * The column is qj (int16, stride rank) or, where e0 is given, column 1's int32 extended mantissas
 * (|e0| <= 2^17: the product below 2^48). Returns the dot product of the new res with the next column
 * (qn, dot_next), or else its sum of squares.
 */
LRT_INLINE uint64_t lrt_mgs_sweep32(const int16_t *qj, const int32_t *e0, const int16_t *qn, const int rank,
                                    int32_t a32, int sh, int32_t *res, uint32_t len, const int clamp,
                                    const int dot_next)
{
    uint64_t hi = 0;
    uint64_t lo = 0;
    int64_t dot = 0;
    uint32_t i;
    const uint64_t k1 = (UINT64_C(1) << 62) + (UINT64_C(1) << (sh - 1));
    const uint64_t k2 = UINT64_C(1) << (62 - sh);
    LRT_OPAQUE32(a32);
    for (i = 0; i < len; i++) {
        int32_t col = e0 != NULL ? e0[i] : (int32_t)qj[(size_t)i * rank]; /* named: with the select inside the
                                                                           * product gcc multiplies 64 bits */
        int64_t x = (int64_t)a32 * col;
        uint64_t d = ((uint64_t)x + k1 - (uint64_t)(x < 0)) >> sh;
        /* res_i - round(x 2^-sh) is exact in 64 bits; without the clamp it lies in int32: its low 32 bits */
        int32_t v = clamp ? lrt_clamp32((int64_t)((uint64_t)(int64_t)res[i] + k2 - d))
                          : (int32_t)((uint32_t)res[i] + (uint32_t)k2 - (uint32_t)d);
        res[i] = v;
        if (dot_next) {
            dot += (int64_t)(int32_t)qn[(size_t)i * rank] * v;
        } else {
            uint64_t sq = (uint64_t)((int64_t)v * v);
            hi += sq >> 32;
            lo += sq & 0xFFFFFFFFu;
        }
    }
    return dot_next ? (uint64_t)dot : lrt_sumsq_total(hi, lo);
}

/*
 * The same update in int32 lanes, for a sweep without the clamp and 17 <= sh, or (low) sh = 15 or
 * 16. |a| < 2^31 is split as |a| = ah 2^16 + al (ah < 2^15, al < 2^16), so x = |a| q = A 2^16 + B
 * with A = ah q and B = al q, both int32, and c = [x < 0] = [q < 0] (x = 0 rounds to 0 with
 * either c). For 17 <= sh, half = 2^(sh-1) = 2^(sh-17) 2^16 and floor((x + half - c) 2^-sh) =
 * (A + 2^(sh-17) + ((B - c) >> 16)) >> (sh - 16) (floor of a floor), every step inside int32. For
 * sh = 15 or 16 (the bases of layers with few rows: their unit columns have entries near 1),
 * 2^(sh-17) is no integer and half goes with B: A 2^(16-sh) + ((B + half - c) >> sh), where
 * A 2^(16-sh) is 2A at most (|A| < 2^30) and B + half - c stays inside int32 (|B| <= (2^16 - 1) 2^15).
 * The rounding rule is odd, so round(a q 2^-sh) = -round(|a| q 2^-sh) for a < 0 (neg).
 */
LRT_INLINE uint64_t lrt_mgs_sweep16(const int16_t *qj, const int16_t *qn, const int rank, uint32_t amag,
                                    const int neg, int sh, int32_t *res, uint32_t len, const int dot_next,
                                    const int low)
{
    uint64_t hi = 0;
    uint64_t lo = 0;
    int64_t dot = 0;
    uint32_t i;
    const int32_t ah = (int32_t)(amag >> 16);
    const int32_t al = (int32_t)(amag & 0xFFFFu);
    const int32_t h = low ? (int32_t)1 << (sh - 1) : (int32_t)1 << (sh - 17);
    const int sh2 = low ? sh : sh - 16;
    const int up = low ? 16 - sh : 0;
    for (i = 0; i < len; i++) {
        int32_t qv = qj[(size_t)i * rank];
        int32_t c = (int32_t)(qv < 0);
        int32_t d = low ? (int32_t)((uint32_t)(ah * qv) << up) + ((al * qv + h - c) >> sh2)
                        : (ah * qv + h + ((al * qv - c) >> 16)) >> sh2;
        int32_t v = neg ? res[i] + d : res[i] - d;
        res[i] = v;
        if (dot_next) {
            dot += (int64_t)(int32_t)qn[(size_t)i * rank] * v;
        } else {
            uint64_t sq = (uint64_t)((int64_t)v * v);
            hi += sq >> 32;
            lo += sq & 0xFFFFFFFFu;
        }
    }
    return dot_next ? (uint64_t)dot : lrt_sumsq_total(hi, lo);
}

#if LRT_AVX2
/*
 * lrt_mgs_sweep16 for column c (1..3) of a rank-4 basis q (rows of 4) with AVX2, eight rows per
 * step, on every CPU with AVX2: each step loads the eight rows once and picks columns c and c + 1
 * out of them (lrt_col8_avx2) where the compiler's AVX2 clone gathers each column with masks and
 * packs; the update in 32-bit lanes as lrt_mgs_sweep16 forms it, the dot product with column c + 1
 * (dot_next) or the sum of squares in 64-bit lanes by vpmuldq, the same sums modulo 2^64. The rows
 * past the last whole step take lrt_mgs_sweep16's loop. tests/test_lrt_multiversion.py compares it
 * with the portable loops (natively and under valgrind) and builds it out with -DET_NO_LRT_AVX2;
 * tests/c/lrt_avx2.c compares it with lrt_mgs_sweep16 on products made to land on rounding ties.
 */
__attribute__((target("avx2"))) static uint64_t lrt_mgs_sweep4_avx2(const int16_t *q, const int c, uint32_t amag,
                                                                   int neg, int sh, int32_t *res, uint32_t len,
                                                                   int dot_next)
{
    const __m256i ah = _mm256_set1_epi32((int32_t)(amag >> 16));
    const __m256i al = _mm256_set1_epi32((int32_t)(amag & 0xFFFFu));
    const __m256i h = _mm256_set1_epi32((int32_t)1 << (sh - 17));
    const __m128i sh2 = _mm_cvtsi32_si128(sh - 16);
    const __m256i sign = _mm256_set1_epi32(neg ? -1 : 0); /* d or -d: (d ^ sign) - sign */
    const __m256i zero = _mm256_setzero_si256();
    __m256i acc = zero; /* dot_next: the dot product; else the squares' high halves */
    __m256i acc_lo = zero; /* and their low halves */
    uint64_t hi;
    uint64_t lo;
    int64_t dot;
    uint32_t i;
    for (i = 0; i + 8u <= len; i += 8u) {
        __m256i r0 = _mm256_loadu_si256((const __m256i *)(const void *)(q + (size_t)i * 4u));
        __m256i r1 = _mm256_loadu_si256((const __m256i *)(const void *)(q + (size_t)i * 4u + 16u));
        __m256i qv = lrt_col8_avx2(r0, r1, c);
        __m256i big = _mm256_add_epi32(_mm256_mullo_epi32(ah, qv), h);
        __m256i small = _mm256_add_epi32(_mm256_mullo_epi32(al, qv), _mm256_cmpgt_epi32(zero, qv));
        __m256i d = _mm256_sra_epi32(_mm256_add_epi32(big, _mm256_srai_epi32(small, 16)), sh2);
        __m256i v = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(res + i)),
                                     _mm256_sub_epi32(_mm256_xor_si256(d, sign), sign));
        lrt_sweep_step_avx2(res + i, v, r0, r1, c + 1, dot_next, &acc, &acc_lo);
    }
    hi = lrt_lanes64_sum_avx2(acc);
    lo = lrt_lanes64_sum_avx2(acc_lo);
    dot = (int64_t)hi;
    for (; i < len; i++) {
        int32_t qv = q[(size_t)i * 4u + (size_t)c];
        int32_t big = (int32_t)(amag >> 16) * qv + ((int32_t)1 << (sh - 17));
        int32_t small = (int32_t)(amag & 0xFFFFu) * qv - (int32_t)(qv < 0);
        int32_t d = (big + (small >> 16)) >> (sh - 16);
        int32_t v = neg ? res[i] + d : res[i] - d;
        res[i] = v;
        if (dot_next) {
            dot += (int64_t)q[(size_t)i * 4u + (size_t)c + 1u] * v;
        } else {
            uint64_t sq = (uint64_t)((int64_t)v * v);
            hi += sq >> 32;
            lo += sq & 0xFFFFFFFFu;
        }
    }
    return dot_next ? (uint64_t)dot : lrt_sumsq_total(hi, lo);
}

/*
 * lrt_mgs_sweep32 without the clamp for a rank-4 basis (q, rows of 4) with AVX2, eight rows per
 * step: the column updated is column 1's extended mantissas e0 (contiguous int32) or, e0 NULL,
 * column c + 1 of q (c = 1..3: columns 2..4, by lrt_col8_avx2; the sweeps whose shift is below
 * lrt_mgs_sweep4_avx2's 17, as for layers of few rows); the dot product is with column c + 2
 * (dot_next; c = 0 for e0) or else the sum of squares is formed. The products and the rounding at
 * the offset in 64-bit lanes (the even and the odd rows by vpmuldq), then, since no value leaves
 * int32, the update on the low 32 bits of each. The rows past the last whole step take
 * lrt_mgs_sweep32's arithmetic. Tested as lrt_mgs_sweep4_avx2 is.
 */
__attribute__((target("avx2"))) static uint64_t lrt_mgs_sweep32_avx2(const int32_t *e0, const int16_t *q, const int c,
                                                                    int32_t a32, int sh, int32_t *res, uint32_t len,
                                                                    int dot_next)
{
    const __m256i a = _mm256_set1_epi32(a32);
    const __m256i k1 = _mm256_set1_epi64x((int64_t)((UINT64_C(1) << 62) + (UINT64_C(1) << (sh - 1))));
    const __m256i k2 = _mm256_set1_epi32((int32_t)(uint32_t)(UINT64_C(1) << (62 - sh))); /* its low 32 bits */
    const __m128i shv = _mm_cvtsi32_si128(sh);
    const __m256i zero = _mm256_setzero_si256();
    __m256i acc = zero; /* dot_next: the dot product; else the squares' high halves */
    __m256i acc_lo = zero; /* and their low halves */
    uint64_t hi;
    uint64_t lo;
    int64_t dot;
    uint32_t i;
    for (i = 0; i + 8u <= len; i += 8u) {
        __m256i r0 = _mm256_loadu_si256((const __m256i *)(const void *)(q + (size_t)i * 4u));
        __m256i r1 = _mm256_loadu_si256((const __m256i *)(const void *)(q + (size_t)i * 4u + 16u));
        __m256i ev = e0 != NULL ? _mm256_loadu_si256((const __m256i *)(const void *)(e0 + i))
                                : (c == 1 ? lrt_col8_avx2(r0, r1, 1) : c == 2 ? lrt_col8_avx2(r0, r1, 2) : lrt_col8_avx2(r0, r1, 3));
        __m256i x = _mm256_mul_epi32(a, ev); /* rows 0, 2, 4, 6 */
        __m256i y = _mm256_mul_epi32(a, _mm256_srli_epi64(ev, 32)); /* rows 1, 3, 5, 7 */
        __m256i d;
        __m256i v;
        x = _mm256_srl_epi64(_mm256_add_epi64(_mm256_add_epi64(x, k1), _mm256_cmpgt_epi64(zero, x)), shv);
        y = _mm256_srl_epi64(_mm256_add_epi64(_mm256_add_epi64(y, k1), _mm256_cmpgt_epi64(zero, y)), shv);
        d = _mm256_blend_epi32(x, _mm256_slli_epi64(y, 32), 0xAA);
        v = _mm256_sub_epi32(_mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(res + i)), k2), d);
        lrt_sweep_step_avx2(res + i, v, r0, r1, c + 1, dot_next, &acc, &acc_lo);
    }
    hi = lrt_lanes64_sum_avx2(acc);
    lo = lrt_lanes64_sum_avx2(acc_lo);
    dot = (int64_t)hi;
    for (; i < len; i++) {
        int64_t x = (int64_t)a32 * (e0 != NULL ? e0[i] : (int32_t)q[(size_t)i * 4u + (size_t)c]);
        uint64_t dx = ((uint64_t)x + (UINT64_C(1) << 62) + (UINT64_C(1) << (sh - 1)) - (uint64_t)(x < 0)) >> sh;
        int32_t v = (int32_t)(int64_t)((uint64_t)(int64_t)res[i] + (UINT64_C(1) << (62 - sh)) - dx);
        res[i] = v;
        if (dot_next) {
            dot += (int64_t)q[(size_t)i * 4u + (size_t)c + 1u] * v;
        } else {
            uint64_t sq = (uint64_t)((int64_t)v * v);
            hi += sq >> 32;
            lo += sq & 0xFFFFFFFFu;
        }
    }
    return dot_next ? (uint64_t)dot : lrt_sumsq_total(hi, lo);
}
#endif

/*
 * res_i -= a q_ij 2^-sh (rounded, saturated to int32). Returns the dot product of the new res
 * with column j + 1 (dot_next), or else its sum of squares. *bound holds a bound on max |res_i|
 * and is updated: |round(a q 2^-sh)| <= (|a| 2^15 >> sh) + 1, so while bound + that stays in
 * int32 nothing saturates and the sweep runs without the clamp (the same values). col: the column's
 * index in a rank-4 row (1..3) where q is such a basis' column 2, 3 or 4 (lrt_mgs_sweep4_avx2 or
 * lrt_mgs_sweep32_avx2 may take it), else 0.
 */
LRT_INLINE uint64_t lrt_mgs_sweep(const int16_t *q, const int rank, int j, int64_t a, int sh, int32_t *res,
                                  uint32_t len, int dot_next, uint64_t *bound, const size_t next, const int col)
{
    uint64_t hi = 0;
    uint64_t lo = 0;
    int64_t dot = 0;
    uint32_t i;
    const int16_t *qj = q + j;
    (void)col;
    if (a >= INT32_MIN && a <= INT32_MAX) {
        /* 32 x 32 -> 64-bit products, clamped only where the bound says a value could leave int32,
         * or the int32-lane sweep where no value can and the shift allows it (most sweeps: the update
         * in 32-bit multiplies, the next column's dot product still 64-bit). Firmware has one copy of
         * each per dot_next (the clamp and the sign run-time flags); the host one per case. */
        int32_t a32 = (int32_t)a;
        uint64_t step = ((lrt_abs(a) << 15) >> sh) + 1; /* < 2^32 */
        int clamp = *bound + step > (uint64_t)INT32_MAX;
        *bound = clamp ? (UINT64_C(1) << 31) : *bound + step;
        if (!clamp && sh >= 17) {
            uint32_t amag = (uint32_t)lrt_abs(a);
            int neg = a < 0;
#if LRT_AVX2
            if (col != 0 && lrt_host_avx2()) {
                return lrt_mgs_sweep4_avx2(qj - col, col, amag, neg, sh, res, len, dot_next);
            }
#endif
            if (!LRT_WIDE) {
                return dot_next ? lrt_mgs_sweep16(qj, qj + next, rank, amag, neg, sh, res, len, 1, 0)
                                : lrt_mgs_sweep16(qj, qj + next, rank, amag, neg, sh, res, len, 0, 0);
            }
            if (dot_next) {
                return neg ? lrt_mgs_sweep16(qj, qj + next, rank, amag, 1, sh, res, len, 1, 0)
                           : lrt_mgs_sweep16(qj, qj + next, rank, amag, 0, sh, res, len, 1, 0);
            }
            return neg ? lrt_mgs_sweep16(qj, qj + next, rank, amag, 1, sh, res, len, 0, 0)
                       : lrt_mgs_sweep16(qj, qj + next, rank, amag, 0, sh, res, len, 0, 0);
        }
        if (!LRT_WIDE && !clamp && sh >= 15) { /* firmware: int32 lanes for sh 15 and 16 too */
            uint32_t amag = (uint32_t)lrt_abs(a);
            return dot_next ? lrt_mgs_sweep16(qj, qj + next, rank, amag, a < 0, sh, res, len, 1, 1)
                            : lrt_mgs_sweep16(qj, qj + next, rank, amag, a < 0, sh, res, len, 0, 1);
        }
#if LRT_AVX2
        if (col != 0 && !clamp && lrt_host_avx2()) {
            return lrt_mgs_sweep32_avx2(NULL, qj - col, col, a32, sh, res, len, dot_next);
        }
#endif
        if (!LRT_WIDE) {
            return dot_next ? lrt_mgs_sweep32(qj, NULL, qj + next, rank, a32, sh, res, len, clamp, 1)
                            : lrt_mgs_sweep32(qj, NULL, qj + next, rank, a32, sh, res, len, clamp, 0);
        }
        if (dot_next) {
            return clamp ? lrt_mgs_sweep32(qj, NULL, qj + next, rank, a32, sh, res, len, 1, 1)
                         : lrt_mgs_sweep32(qj, NULL, qj + next, rank, a32, sh, res, len, 0, 1);
        }
        return clamp ? lrt_mgs_sweep32(qj, NULL, qj + next, rank, a32, sh, res, len, 1, 0)
                     : lrt_mgs_sweep32(qj, NULL, qj + next, rank, a32, sh, res, len, 0, 0);
    }
    *bound = UINT64_C(1) << 31;
    for (i = 0; i < len; i++) {
        int64_t x = a * qj[(size_t)i * rank];
        int32_t v = lrt_clamp32((int64_t)res[i] - (LRT_WIDE ? lrt_round_shift_sm(x, sh) : et_round_shift_pos_inline(x, sh)));
        uint64_t sq = (uint64_t)((int64_t)v * v);
        res[i] = v;
        if (dot_next) {
            dot += (int64_t)qj[(size_t)i * rank + next] * v;
        } else {
            hi += sq >> 32;
            lo += sq & 0xFFFFFFFFu;
        }
    }
    return dot_next ? (uint64_t)dot : lrt_sumsq_total(hi, lo);
}

/*
 * One MGS pass of res against `cols` columns of q, entry i of column j at q[j next + i stride] (a
 * basis' columns 2 .. r: stride = rank, next = 1; a batch's frame columns: stride = 1, next = len); coef in residual
 * units. Column j's update and column j + 1's dot product share one sweep over res (the dot reads
 * each element after its update, as MGS needs); the last update sweep also sums the squares of the
 * new residual, which the pass returns. The columns' exponent is q_exp (0: an empty basis), or
 * exps[j] each where exps is given (0: a zero column, coefficient 0); -44..-14, so every rescale is
 * a rounding right shift by 14..44. bound is a bound on max|res_i| on entry (lrt_res_bound, or what
 * column 1's sweep left). f is the columns' multiplier (a basis' f, or LRT_F_ONE for a
 * batch's frame columns): the coefficient is a = round(round(q_j . res 2^e) f 2^-16) and the update
 * res -= round(s q_j 2^e) with s = round(a f 2^-16). s_in is sum(res^2) on entry (below 2^56 after a rescale: every
 * |res_i| < 2^28); dot0, where given, the dot product of res with the first column (the sweep that
 * rescaled res formed it: lrt_rescale_dot).
 */
LRT_INLINE uint64_t lrt_mgs_pass_r(const int16_t *q, const int stride, const size_t next, const int cols, int q_exp,
                                   uint32_t f, const int *exps, int32_t *res, uint32_t len, uint64_t bound,
                                   const int64_t *dot0, int64_t *coef)
{
    /* columns 2..4 of a rank-4 basis (q at column 2): each sweep may take lrt_mgs_sweep4_avx2 */
    const int col4 = stride == 4 && next == 1 && cols == 3 && exps == NULL;
    int j;
    int64_t dot;
    for (j = 0; j < cols; j++) {
        coef[j] = 0;
    }
    dot = dot0 != NULL ? *dot0 : lrt_col_res_dot(q, stride, 0, res, len);
    for (j = 0; j < cols; j++) {
        const int16_t *qj = q + (size_t)j * next;
        int e = exps != NULL ? exps[j] : q_exp;
        int64_t a = e == 0 ? 0 : LRT_SAT(LRT_RSHIFT_POS(dot, -e), -LRT_COEF_GUARD, LRT_COEF_GUARD);
        int more = j + 1 < cols;
        if (f != LRT_F_ONE) { /* |a f| < 2^56 */
            a = LRT_RSHIFT_POS(a * (int64_t)f, LRT_F_BITS);
        }
        coef[j] = a;
        if (a == 0) {
            if (more) {
                dot = lrt_col_res_dot(qj + next, stride, 0, res, len);
                continue;
            }
            return lrt_sumsq(res, len);
        }
        if (f != LRT_F_ONE) {
            a = LRT_RSHIFT_POS(a * (int64_t)f, LRT_F_BITS); /* the update's scalar s */
        }
        if (!more) {
            return lrt_mgs_sweep(qj, stride, 0, a, -e, res, len, 0, &bound, next, col4 ? j + 1 : 0);
        }
        dot = (int64_t)lrt_mgs_sweep(qj, stride, 0, a, -e, res, len, 1, &bound, next, col4 ? j + 1 : 0);
    }
    return 0; /* not reached: the last column returns */
}

/*
 * Rank 4 (the default) gets its own copy with the rank a constant: strided loads the compiler can
 * vectorise; so do a batch's contiguous frame columns. Firmware has the one generic copy.
 */
ET_HOT static uint64_t lrt_mgs_pass_cols(const int16_t *q, int stride, size_t next, int cols, int q_exp, uint32_t f,
                                         const int *exps, int32_t *res, uint32_t len, uint64_t bound,
                                         const int64_t *dot0, int64_t *coef)
{
    if (LRT_WIDE && stride == 4 && next == 1 && cols == 3 && exps == NULL) {
        return lrt_mgs_pass_r(q, 4, 1, 3, q_exp, f, NULL, res, len, bound, dot0, coef);
    }
    if (LRT_WIDE && stride == 1) {
        return lrt_mgs_pass_r(q, 1, next, cols, q_exp, f, exps, res, len, bound, dot0, coef);
    }
    return lrt_mgs_pass_r(q, stride, next, cols, q_exp, f, exps, res, len, bound, dot0, coef);
}

/* A bound on max|res_i| from sum(res^2) = s: below 2^56 (after a rescale) every |res_i| < 2^28. */
static uint64_t lrt_res_bound(uint64_t s)
{
    return s < (UINT64_C(1) << 56) ? (UINT64_C(1) << 28) : (UINT64_C(1) << 31);
}

/*
 * Column 1's update for any |a| <= 2^40 (the coefficient guard), *bound updated as lrt_mgs_sweep does:
 * |round(a e0 2^-sh)| <= (|a| 2^(15+b) >> sh) + 1. |a| < 2^31 takes lrt_mgs_sweep32 (32 x 32 -> 64-bit
 * products, the rounding inline; firmware one copy per dot_next), larger |a| the loop below. Returns the dot
 * product of the new res with column 2 (qn, stride rank) or, without one (qn NULL), the new sum of
 * squares.
 */
ET_HOT static uint64_t lrt_mgs_sweep_e0(const int32_t *e0, const int16_t *qn, int rank, int64_t a, int sh, int b,
                                        int32_t *res, uint32_t len, uint64_t *bound)
{
    uint64_t hi = 0;
    uint64_t lo = 0;
    int64_t dot = 0;
    uint32_t i;
    uint64_t step = ((lrt_abs(a) << (15 + b)) >> sh) + 1;
    int clamp = *bound + step > (uint64_t)INT32_MAX;
    *bound = clamp ? (UINT64_C(1) << 31) : *bound + step;
    if (a >= INT32_MIN && a <= INT32_MAX) {
        int32_t a32 = (int32_t)a;
        if (!LRT_WIDE) { /* firmware: one copy per dot_next, the clamp a run-time flag (the rounding inline) */
            return qn != NULL ? lrt_mgs_sweep32(NULL, e0, qn, rank, a32, sh, res, len, clamp, 1)
                              : lrt_mgs_sweep32(NULL, e0, qn, rank, a32, sh, res, len, clamp, 0);
        }
        if (qn != NULL && rank == 4 && !clamp) { /* the default rank, a constant stride */
#if LRT_AVX2
            if (lrt_host_avx2()) {
                return lrt_mgs_sweep32_avx2(e0, qn - 1, 0, a32, sh, res, len, 1);
            }
#endif
            return lrt_mgs_sweep32(NULL, e0, qn, 4, a32, sh, res, len, 0, 1);
        }
        if (qn != NULL) {
            return clamp ? lrt_mgs_sweep32(NULL, e0, qn, rank, a32, sh, res, len, 1, 1)
                         : lrt_mgs_sweep32(NULL, e0, qn, rank, a32, sh, res, len, 0, 1);
        }
        return clamp ? lrt_mgs_sweep32(NULL, e0, qn, rank, a32, sh, res, len, 1, 0)
                     : lrt_mgs_sweep32(NULL, e0, qn, rank, a32, sh, res, len, 0, 0);
    }
    for (i = 0; i < len; i++) {
        int64_t w = (int64_t)res[i] - LRT_RSHIFT(a * e0[i], sh);
        int32_t v = clamp ? lrt_clamp32(w) : (int32_t)w;
        res[i] = v;
        if (qn != NULL) {
            dot += (int64_t)(int32_t)qn[(size_t)i * rank] * v;
        } else {
            uint64_t sq = (uint64_t)((int64_t)v * v);
            hi += sq >> 32;
            lo += sq & 0xFFFFFFFFu;
        }
    }
    return qn != NULL ? (uint64_t)dot : lrt_sumsq_total(hi, lo);
}

/*
 * One pass against a basis (len x rank, row-major, at q_exp, multiplier f), column 1 read as e0, its
 * extended mantissas at q_exp - b; dot0: its dot product with res (the sweep that rescaled res formed
 * it), or NULL. Columns 2 .. r at q_exp give exactly what their mantissas times 2^b at q_exp - b give.
 */
static uint64_t lrt_mgs_pass(const int16_t *q, const int32_t *e0, int rank, int q_exp, uint32_t f, int32_t *res,
                             uint32_t len, uint64_t s_in, const int64_t *dot0, int64_t *coef)
{
    int b = lrt_low_bits(rank);
    int ee = q_exp - b;
    uint64_t bound = lrt_res_bound(s_in);
    int64_t dot;
    int64_t a;
    int j;
    if (q_exp == 0) {
        for (j = 0; j < rank; j++) {
            coef[j] = 0;
        }
        return s_in; /* empty basis */
    }
    dot = dot0 != NULL ? *dot0 : lrt_e0_res_dot(e0, res, len);
    a = LRT_SAT(LRT_RSHIFT_POS(dot, -ee), -LRT_COEF_GUARD, LRT_COEF_GUARD);
    a = LRT_RSHIFT_POS(a * (int64_t)f, LRT_F_BITS);
    coef[0] = a;
    if (a != 0) {
        a = LRT_RSHIFT_POS(a * (int64_t)f, LRT_F_BITS); /* the update's scalar s */
    }
    if (rank == 1) {
        return a == 0 ? lrt_sumsq(res, len) : lrt_mgs_sweep_e0(e0, NULL, rank, a, -ee, b, res, len, &bound);
    }
    dot = a == 0 ? lrt_col_res_dot(q, rank, 1, res, len)
                 : (int64_t)lrt_mgs_sweep_e0(e0, q + 1, rank, a, -ee, b, res, len, &bound);
    return lrt_mgs_pass_cols(q + 1, rank, 1, rank - 1, q_exp, f, NULL, res, len, bound, &dot, coef + 1);
}

typedef struct {
    int64_t a[ET_LRT_MAX_RANK]; /* projections on the basis, at a_exp */
    int a_exp;
    int res_exp;  /* exponent of the residual left in the scratch */
    uint64_t rho; /* ||residual||, rounded, at res_exp; in [2^27, 2^28] or 0 */
    uint64_t s0;  /* the rescaled input's sum(res^2), at a_exp: in [2^54, 2^56) */
    int k0;       /* the input's rescale: res = input 2^k0 */
    uint64_t s1;  /* after the first pass: sum(res^2) (UINT64_MAX when it does not fit) */
    int e1;       /* and the residual's exponent then */
} lrt_side_t;

/* The rescale of an input at exponent e0 with sum of squares s (> 0, from lrt_input_sumsq): its
 * shift, sum of squares and exponent in side->k0, s0, a_exp. Nothing is read or written yet: a term
 * the early kappa test discards never loads its input. */
static void lrt_project_rescale(uint32_t s, int e0, lrt_side_t *side)
{
    side->k0 = lrt_norm_k(s);
    side->s0 = (uint64_t)s << (2 * side->k0);
    side->a_exp = e0 - side->k0;
}

/* One side of a term: its basis, 8-bit input, residual scratch and projection. */
typedef struct {
    const int16_t *q;
    const int32_t *e0; /* column 1's extended mantissas */
    int q_exp;
    uint32_t f;
    const int8_t *s8;
    const uint8_t *u8;
    int32_t *res;
    uint32_t len;
    lrt_side_t *side;
} lrt_input_t;

/* The input loaded into res at its rescale, then the first MGS pass: the pass' residual in res on exit
 * (its sum of squares and exponent in side->s1, side->e1). */
static void lrt_project_begin(const lrt_input_t *in, int rank)
{
    lrt_side_t *side = in->side;
    int64_t dot0 = lrt_input_load(in->s8, in->u8, in->len, side->k0, in->res, in->q_exp != 0 ? in->e0 : NULL);
    side->s1 = lrt_mgs_pass(in->q, in->e0, rank, in->q_exp, in->f, in->res, in->len, side->s0, &dot0, side->a);
    side->e1 = side->a_exp;
}

/* The second pass (passes == 2) and the final rescale: the residual and rho. */
static void lrt_project_end(const lrt_input_t *in, int rank, int passes)
{
    const int16_t *q = in->q;
    int q_exp = in->q_exp;
    int32_t *res = in->res;
    uint32_t len = in->len;
    lrt_side_t *side = in->side;
    uint64_t s = side->s1;
    int e = side->e1;
    int j;
    if (passes == 2 && s != 0) {
        int64_t a2[ET_LRT_MAX_RANK];
        int64_t dot0 = 0;
        e -= q_exp != 0 ? lrt_rescale_dot(res, len, s, &s, in->e0, &dot0) : lrt_rescale(res, len, s, &s);
        s = lrt_mgs_pass(q, in->e0, rank, q_exp, in->f, res, len, s, &dot0, a2);
        for (j = 0; j < rank; j++) {
            side->a[j] += LRT_RSHIFT(a2[j], side->a_exp - e);
        }
    }
    e -= lrt_rescale(res, len, s, &s);
    side->res_exp = e;
    side->rho = lrt_sqrt_round(s);
}

/* ---- early kappa discard ------------------------------------------------------------ */

/*
 * With two MGS passes a term the kappa rule discards used to cost both. After the first pass the
 * test c_1 > kappa U_L U_R, with U an upper bound on the final rho computed from the first pass'
 * residual, implies the exact test (step 2 in lrt_accumulate) for every state, so the second pass
 * is skipped for such terms and nothing else changes (the twin needs no copy of it).
 *
 * Why U bounds rho. Write u_j = q_j f 2^(q_exp - 16) for column j as a real vector. A sweep of the
 * second pass maps res to clamp(res - round(s q_j 2^q_exp)) with s = round(a f 2^-16) and
 * a = round(round(q_j . res 2^q_exp) f 2^-16), the inner value saturated at +-2^40 (LRT_COEF_GUARD),
 * entries rounded once. s q_j 2^q_exp = (s 2^16 / f) u_j, and s 2^16 / f = u_j . res + eps with
 * |eps| <= 1/2 2^16 / f + 1/2 + 1/2 f / 2^16 <= 2 (f >= 2^15). When |u_j|^2 <= 2, I - u_j u_j^T is
 * symmetric with eigenvalues 1 and 1 - |u_j|^2, both in [-1, 1]: a contraction. So, in residual units,
 *   |res - (u_j . res + eps) u_j| <= |res - (u_j . res) u_j| + |eps| |u_j| <= |res| + 2 sqrt(2)
 * (a saturated a is lambda (u_j . res) with lambda in (0, 1), and |res - lambda (u.res) u|^2 =
 * |res|^2 - lambda (u.res)^2 (2 - lambda |u|^2) <= |res|^2: no error term at all); rounding each
 * entry adds at most sqrt(n)/2, and the clamp only shrinks entries. Let R1 = sqrt(s1) 2^e1 be the
 * first pass' residual norm. The second pass rescales by an exact left shift (or a rounding right
 * shift: + sqrt(n)/2) to units w with sum(res^2) >= 2^54, so w <= R1 2^-27 and |res| < 2^28 + 128;
 * r sweeps give |res2| <= R1 / w + sqrt(n)/2 + r (2 sqrt(2) + sqrt(n)/2) < 2^28 + 2^10.5 (n <= 65535,
 * r <= 8). The final rescale works in units w_f <= 2.0001 w (a right shift by s needs sum(res2^2)
 * >= 2^(54+2s), so 2^s <= |res2| 2^-27), adding sqrt(n)/2 units of w_f, and rho = sqrt_round(...)
 * another 1/2. Together
 *   rho 2^res_exp <= R1 + w (128 + 8 (2.83 + 128) + 2.0001 (128 + 0.5)) < R1 + 2^11 w
 *                 <= R1 (1 + 2^-16).
 * (s1 == 0 leaves rho = 0; an empty basis has no sweeps.) So U = (isqrt(s1) + 1)(1 + 2^-16),
 * rounded up, at exponent e1 bounds rho 2^res_exp, and U_L U_R bounds rho_L rho_R.
 *
 * Before the first pass. The input rescale is an exact left shift (an 8-bit input has
 * sum(res^2) < 2^32) to units w0 with s0 = sum(res^2) in [2^54, 2^56), so w0 <= R0 2^-27 for
 * R0 = sqrt(s0) 2^e0. The first pass is r sweeps of the same kind: its residual has norm
 * R1 <= R0 + w0 8 (2.83 + 128) < R0 (1 + 2^-16.96), and with the lemma above (for one pass the
 * final rescale alone: less) rho 2^res_exp <= R1 (1 + 2^-16) < R0 (1 + 2^-15). So
 * U0 = (isqrt(s0) + 1)(1 + 2^-15), rounded up, at exponent e0 bounds rho 2^res_exp for either
 * number of passes, and c_1 > kappa U0_L U0_R discards a term before any pass: for a term far
 * below the estimate (c_1 above kappa times the input norms), the whole projection is skipped. The threshold
 * is then formed exactly as the exact test forms it (et_ufloat_make twice, rounding to nearest,
 * which is monotone in the value: exponents here are far inside its +-2^24), so the early
 * threshold is >= the exact one, and c_1 above it is above the exact one.
 *
 * The contraction needs |u_j|^2 <= 2, i.e. sum_i q_ij^2 <= 2^(33 - 2 q_exp) / f^2: always true for
 * q_exp <= -23 (sum < 2^46 <= 2^47, and f < 2^16), and shown for the bases of larger exponents by one pass over
 * Q (lrt_cols_contract), only when the early test would discard. The bases accumulate leaves have
 * nearly unit columns (|u_j|^2 within about 1e-2 of 1, docs/lrt.md); a state that fails the check
 * takes the exact path.
 * s1 >= 2^58 (far above what a contraction leaves: the first pass starts below 2^56) takes the
 * exact path too, which keeps U_L U_R < 2^60.
 *
 * ET_LRT_EARLY_CHECK (tests only: tests/c/lrt_early.c) keeps the terms on the exact path and
 * counts, for every term where the bound applies, whether U bounded rho and whether an early
 * discard was a final one.
 */
#define LRT_EARLY_S1_MAX (UINT64_C(1) << 58)

#define LRT_EARLY_MARGIN0 15 /* U0 = sqrt(s0) (1 + 2^-15): before the first pass */
#define LRT_EARLY_MARGIN1 16 /* U = sqrt(s1) (1 + 2^-16): after it */

/* U >= sqrt(s) (1 + 2^-margin) for s < 2^58 (U < 2^29 + 2^15). */
static uint64_t lrt_rho_bound(uint64_t s, int margin)
{
    uint64_t u = et_isqrt_u64(s) + 1;
    return u + (u >> margin) + 1;
}

/*
 * Every column of q (len x rank, exponent q_exp != 0, multiplier f) has |u_j|^2 = sum(q_ij^2) f^2
 * 2^(2 q_exp - 32) <= 2, i.e. sum(q_ij^2) <= 2^(33 - 2 q_exp) / f^2 (taken a little low: lim), shown
 * with 32-bit sums of floor(q_ij^2 / 2^16) (each <= 2^14, so a sum over 65535 rows stays below 2^30):
 * sum(q_ij^2) < 2^16 (sum floor(q_ij^2 / 2^16) + len). Sufficient, not necessary: a column within
 * 2^16 len of the limit (2^-14 of it at most, for q_exp >= -22) takes the exact path.
 * lrt_cols_within makes that test on the column sums (from lrt_cols_contract's pass or lrt_ext_unpack),
 * sq[0] = sum floor(E_i^2 / 2^16) for column 1 (at q_exp - b: 2^2b times the limit), sq[k] = sum
 * floor(q_ik^2 / 2^16) for the others; an empty basis and q_exp <= -23 pass without them.
 */
static int lrt_cols_exempt(int q_exp)
{
    return q_exp == 0 || q_exp <= -23;
}

static int lrt_cols_within(const uint64_t *sq, int rank, int q_exp, uint32_t f, uint32_t len)
{
    uint64_t scale;
    uint64_t lim;
    int k;
    if (lrt_cols_exempt(q_exp)) {
        return 1; /* before the quotient: an empty basis has f = 0 */
    }
    /* lim <= 2^(1 - 2 q_exp) 2^32 / f^2: floor(2^62 / f^2) (in [2^30, 2^32]) times 2^(1 - 2 q_exp - 30) */
    scale = (UINT64_C(1) << 62) / ((uint64_t)f * f);
    lim = q_exp >= -14 ? scale >> (2 * q_exp + 29) : scale << (1 - 2 * q_exp - 30);
    for (k = 1; k < rank; k++) {
        if ((sq[k] + len) << 16 > lim) {
            return 0;
        }
    }
    return ((sq[0] + len) << 16) <= (lim << (2 * lrt_low_bits(rank)));
}

ET_HOT static int lrt_cols_contract(const int16_t *q, const int32_t *e0, int rank, int q_exp, uint32_t f,
                                    uint32_t len)
{
    uint64_t sq[ET_LRT_MAX_RANK];
    if (lrt_cols_exempt(q_exp)) {
        return 1; /* no pass needed */
    }
    if (LRT_WIDE && rank == 4) {
        lrt_cols_sums_r(q, e0, 4, len, sq);
    } else {
        lrt_cols_sums_r(q, e0, rank, len, sq);
    }
    return lrt_cols_within(sq, rank, q_exp, f, len);
}

/* c_1 > kappa rho_l rho_r (c_1 = c1 2^c_exp, rho_l at exp_l, ...), formed as the kappa rule forms it. */
static int lrt_kappa_discards_c(uint32_t c1, int c_exp, uint32_t kappa, uint64_t rho_l, int exp_l, uint64_t rho_r,
                                int exp_r)
{
    et_ufloat_t thr = et_ufloat_make(rho_l * rho_r, (int32_t)(exp_l + exp_r));
    if (thr.mant != 0) {
        thr = et_ufloat_make((uint64_t)thr.mant * kappa, thr.exp);
    }
    return et_ufloat_cmp(et_ufloat_make(c1, c_exp), thr) > 0;
}

static int lrt_kappa_discards(const et_lrt_state_t *st, uint32_t kappa, uint64_t rho_l, int exp_l, uint64_t rho_r,
                              int exp_r)
{
    return lrt_kappa_discards_c(st->c_mant[0], st->c_exp, kappa, rho_l, exp_l, rho_r, exp_r);
}

#ifdef ET_LRT_EARLY_CHECK
/* terms where the bound applied; of them, rho above U (either side); early discards; of them, ones
 * the exact test kept; terms where rho 2^res_exp exceeded isqrt(s1) 2^e1 (the margin was needed) */
uint64_t et_lrt_early_stats[22]; /* [5..9]: the same for the test before the first pass; [10..13]: for the
                                  * test with the shorter side after its first pass, the longer before any;
                                  * [15], [16]: terms with lrt_ext_unpack's column sums, and of them, those
                                  * where the sums or their verdict differed from lrt_cols_contract's pass
                                  * (plus the sides whose dot products or Gram sums differed from plain loops);
                                  * [17..20]: [0..3] for the bounds from the dot products and Gram matrices
                                  * (lrt_gram_bound, AVX-512 hosts); [21]: of their early discards, those
                                  * the estimates (lrt_dots_estimate) would not have sought */

/* rho 2^e > u 2^eu, exactly, for rho <= 2^28 + 1 and u < 2^30 */
static int lrt_above_bound(uint64_t rho, int e, uint64_t u, int eu)
{
    if (rho == 0) {
        return 0;
    }
    if (e >= eu) {
        return e - eu >= 31 || (rho << (e - eu)) > u;
    }
    return eu - e < 31 && rho > (u << (eu - e));
}
#endif

/* One side's bound U on its final rho, at exponent e; u = 0: none (s at or above LRT_EARLY_S1_MAX). */
typedef struct {
    uint64_t u;
    int e;
} lrt_bound_t;

/* From the side's sum of squares s at exponent e: before the first pass (margin LRT_EARLY_MARGIN0: s0,
 * a_exp) or after it (MARGIN1: s1, e1). */
static lrt_bound_t lrt_bound(uint64_t s, int e, int margin)
{
    lrt_bound_t b;
    b.u = s < LRT_EARLY_S1_MAX ? lrt_rho_bound(s, margin) : 0;
    b.e = e;
    return b;
}

#if LRT_GRAM
/* g = m 2^p f^2 2^sh_g (a Gram entry at 2^-30), rounded down or up, for |m| < 2^36; +-2^62 (beyond any
 * limit the bound accepts, with the sign of g) where it would pass 2^40 */
static int64_t lrt_gram_scale(int64_t m, int p, uint32_t f, int sh_g, int up)
{
    int64_t v = lrt_shr_dir(m * (int64_t)f, 16, up) * (int64_t)f; /* m f^2 2^-16, rounded */
    int sh = p + sh_g + 16;
    if (sh < 0) {
        return lrt_shr_dir(v, -sh, up);
    }
    if (sh > 40 || v > (INT64_C(1) << (40 - sh)) || v < -(INT64_C(1) << (40 - sh))) {
        return v < 0 ? -(INT64_C(1) << 62) : (INT64_C(1) << 62);
    }
    return v * (INT64_C(1) << sh);
}

/*
 * A bound on one side's final rho from its input's dot products with the basis and the basis' Gram
 * matrix, before its first pass: where the term is far from the subspace only its norm is needed
 * (U0 above), but the kappa rule discards most terms of a long stream where the bases hold a large
 * part of the input (half of a uniform 8-bit input's energy lies along the bases' mean direction),
 * and then U0 is too loose and both first passes ran only to show the discard.
 *
 * Write x for the input in units w0 (x = X 2^k0, |x|^2 = s0), u_j = E_j phi for column j as a real
 * vector (E the extended mantissas: column 1's e0, the others q 2^b; phi = f 2^(q_exp - 16 - b)),
 * a_j = u_j . x and g_jk = u_j . u_k. The first pass in exact arithmetic, y_j = y_(j-1) - c_j u_j
 * with y_0 = x and c_j = u_j . y_(j-1), has
 *   c_j = a_j - sum_(k<j) g_jk c_k   and   |y_j|^2 = |y_(j-1)|^2 - c_j^2 (2 - g_jj),
 * so |y_r|^2 = s0 - sum_j c_j^2 (2 - g_jj), exactly, from a and g alone. Here a and g are known
 * within intervals (lrt_gram4_avx512's floors of the products over 2^16, column 1's low bits lo in
 * 0..3 taken at their extremes, the scalings rounded outwards), and so c by interval arithmetic;
 * S >= |y_r|^2 takes each c_j^2 at its smallest and 2 - g_jj at its smallest (>= 0 where the
 * contraction check holds, which a discard needs anyway). The computed pass differs from y_r by at
 * most r (2 sqrt(2) + sqrt(n)/2) units (each sweep's error, the later sweeps contracting it; as in
 * the lemma above, with |res| <= |x| + that < 2^31 no entry clamps and no coefficient saturates), so
 * R1 <= (isqrt(S) + 1 + r (4 + 2^ceil(bits(n)/2) / 2)) w0 and, by the lemma, rho 2^res_exp <=
 * R1 (1 + 2^-16).
 * Rank 4 and b = 2 only (the AVX-512 kernel's); u = 0 (no bound) where an interval leaves the
 * ranges below, which valid bases do not reach.
 */
/* The shift that puts a side's dot product A_j (extended-mantissa units, b = 2) times f into units w0:
 * a_j = A_j f 2^(q_exp - 16 - b + k0). It is <= 0 for every valid basis and input (q_exp <= -14,
 * k0 <= 27); a positive one gets no bound and no estimate. */
static int lrt_dots_shift(int q_exp, const lrt_side_t *side)
{
    return q_exp - 16 - 2 + side->k0;
}

static lrt_bound_t lrt_gram_bound(const lrt_gram_t *gm, const lrt_scan_t *scan, const lrt_side_t *side, int q_exp,
                                  uint32_t f, uint32_t len)
{
    const int64_t lim_g = INT64_C(1) << 31; /* |g| <= 2 at 2^-30, as the contraction allows */
    const int64_t lim_c = INT64_C(1) << 30; /* |c| <= 2: valid bases give |c_j| <= |u_j| |x| < 2^28.5 */
    int64_t glo[4][4];
    int64_t ghi[4][4];
    int64_t clo[4];
    int64_t chi[4];
    int64_t n = (int64_t)len;
    uint64_t sub = 0;
    uint64_t sq;
    uint64_t u;
    lrt_bound_t none = {0, 0};
    lrt_bound_t out;
    int sh_g = 2 * q_exp - 6;         /* g at 2^-30: G f^2 2^(2 q_exp - 36 + 30) */
    int sh_a = lrt_dots_shift(q_exp, side);
    int j;
    int k;
    if (sh_a > 0) {
        return none;
    }
    for (j = 0; j < 4; j++) {
        /* A_1 = 4 sum(q_0 X) + sum(lo X), lo in 0..3; A_k = 4 sum(q_k X) */
        int64_t a = gm->dot[j] * 4;
        int64_t r = j == 0 ? 3 * (int64_t)gm->xabs : 0;
        /* G_11 = sum E^2 in [2^16 sq0, 2^16 (sq0 + n)]; G_kk = 16 sum q^2 in [2^20 sq, 2^20 (sq + n)] */
        ghi[j][j] = lrt_gram_scale((int64_t)scan->sq[j] + n, j == 0 ? 16 : 20, f, sh_g, 1);
        clo[j] = lrt_shr_dir((a - r) * (int64_t)f, -sh_a, 0); /* a_j for now */
        chi[j] = lrt_shr_dir((a + r) * (int64_t)f, -sh_a, 1);
        if (ghi[j][j] > 4 * lim_g) {
            return none;
        }
    }
    for (k = 0; k < 6; k++) {
        /* G_jk = 16 sum q_j q_k in [2^20 h, 2^20 (h + n)]; with column 1, + 4 sum(lo q_k), within 3 2^17 n */
        int p = lrt_gram_pairs[k][0];
        int t = lrt_gram_pairs[k][1];
        int64_t lo = p == 0 ? 8 * gm->h[k] - 3 * n : gm->h[k];
        int64_t hi = p == 0 ? 8 * (gm->h[k] + n) + 3 * n : gm->h[k] + n;
        glo[p][t] = glo[t][p] = lrt_gram_scale(lo, p == 0 ? 17 : 20, f, sh_g, 0);
        ghi[p][t] = ghi[t][p] = lrt_gram_scale(hi, p == 0 ? 17 : 20, f, sh_g, 1);
        if (ghi[p][t] > lim_g || glo[p][t] < -lim_g) {
            return none;
        }
    }
    for (j = 0; j < 4; j++) {
        int64_t pmin = 0; /* sum_k g_jk c_k over the corners of the intervals: each below 2^61 */
        int64_t pmax = 0;
        int64_t w;
        for (k = 0; k < j; k++) {
            int64_t p1 = glo[j][k] * clo[k];
            int64_t p2 = glo[j][k] * chi[k];
            int64_t p3 = ghi[j][k] * clo[k];
            int64_t p4 = ghi[j][k] * chi[k];
            int64_t mn = p1 < p2 ? p1 : p2;
            int64_t mx = p1 < p2 ? p2 : p1;
            mn = p3 < mn ? p3 : mn;
            mx = p3 > mx ? p3 : mx;
            mn = p4 < mn ? p4 : mn;
            mx = p4 > mx ? p4 : mx;
            pmin += mn;
            pmax += mx;
        }
        clo[j] -= lrt_shr_dir(pmax, 30, 1);
        chi[j] -= lrt_shr_dir(pmin, 30, 0);
        if (clo[j] < -lim_c || chi[j] > lim_c) {
            return none;
        }
        w = lim_g - ghi[j][j]; /* (2 - g_jj) 2^30 at its smallest */
        if (w > 0 && (clo[j] > 0 || chi[j] < 0)) {
            uint64_t m = (uint64_t)(clo[j] > 0 ? clo[j] : -chi[j]); /* the smallest |c_j| */
            sub += ((m * m) >> 30) * (uint64_t)w; /* below 2^61 */
        }
    }
    sq = sub >= side->s0 ? 0 : side->s0 - sub;
    /* + r (3 + sqrt(n) / 2 + 1) with sqrt(n) <= 2^ceil(bits(n) / 2) */
    u = et_isqrt_u64(sq) + 1 + 4 * (4 + ((UINT64_C(1) << ((lrt_bitlen(len) + 1) / 2)) >> 1));
    out.u = u + (u >> LRT_EARLY_MARGIN1) + 1;
    out.e = side->a_exp;
    return out;
}

/* The sweeps and the bound's arithmetic cost about what first passes over this many rows (both sides
 * together) do: below it a discard is cheaper found by the passes (bench/: mcu-cnn's layers, 17 and 88
 * rows, took 6 % longer per training sample with the bound). */
#define LRT_GRAM_MIN_ROWS 512

/* A side's input dot products (lrt_gram_t's dot and xabs) where its basis is not empty. */
static void lrt_dots_side(const lrt_input_t *in, lrt_gram_t *gm)
{
    if (in->q_exp == 0) {
        return;
    }
#if LRT_AVX512
    if (lrt_host_avx512()) {
        lrt_dots4_avx512(in->q, in->s8, in->u8, in->len, gm);
        return;
    }
#endif
#if LRT_AVX2
    lrt_dots4_avx2(in->q, in->s8, in->u8, in->len, gm); /* sums came from lrt_ext_unpack4_avx2: an AVX2 CPU */
#endif
}

/*
 * An estimate of a side's final rho from the dot products alone, as if the basis were orthonormal:
 * sqrt(s0 - sum a_j^2) less 1/64 (an empty basis: sqrt(s0)). It decides nothing by itself: the term
 * goes on to the Gram sweeps and lrt_gram_bound only where the estimates would discard it, which
 * spares them for most terms the kappa rule keeps. Bases near orthonormal move the residual by a few
 * per mille: in tests/c/lrt_early.c the estimates pass over 47 of the bound's 38,912 discards at
 * 1/64 (24 at 1/32, 6 at 1/16) and in training none (mcu-cnn, paper-cnn), while of the benchmark's
 * stream (terms 100-600 at both shapes) 1/16 sent 106 kept terms to the Gram sweeps and 1/64 sends 40.
 */
static lrt_bound_t lrt_dots_estimate(const lrt_input_t *in, const lrt_gram_t *gm)
{
    const lrt_side_t *side = in->side;
    int sh_a = lrt_dots_shift(in->q_exp, side);
    uint64_t sub = 0;
    uint64_t u;
    lrt_bound_t out;
    int j;
    if (in->q_exp != 0 && sh_a <= 0) {
        for (j = 0; j < 4; j++) {
            int64_t a = lrt_shr_dir(gm->dot[j] * 4 * (int64_t)in->f, -sh_a, 0);
            uint64_t m = (uint64_t)(a < 0 ? -a : a);
            sub += m < (UINT64_C(1) << 30) ? m * m : side->s0;
        }
    }
    u = et_isqrt_u64(sub >= side->s0 ? 0 : side->s0 - sub);
    out.u = u - (u >> 6);
    out.e = side->a_exp;
    return out;
}

/* Both sides' dot products (into gm[0], gm[1]); 1 where the estimates from them would discard the term,
 * so that the Gram sweeps should run. */
static int lrt_gram_sought(const et_lrt_state_t *st, const lrt_input_t *in, uint32_t kappa, lrt_gram_t *gm)
{
    lrt_dots_side(&in[0], &gm[0]);
    lrt_dots_side(&in[1], &gm[1]);
    return lrt_kappa_discards(st, kappa, lrt_dots_estimate(&in[0], &gm[0]).u, in[0].side->a_exp,
                              lrt_dots_estimate(&in[1], &gm[1]).u, in[1].side->a_exp);
}

/* A side's bound before its first pass, given its dot products: lrt_gram_bound's where it is the
 * tighter, else U0 (u0); an empty basis leaves the input as it is (U0). */
#ifdef ET_LRT_EARLY_CHECK
/* 1 where the kernels' dot products, xabs and Gram sums of a side (after lrt_gram_side) are the plain
 * loops' (the rows' tail loop over every row) */
static int lrt_gram_same(const lrt_input_t *in, const lrt_gram_t *gm)
{
    lrt_gram_t ref;
    if (in->q_exp == 0) {
        return 1;
    }
    memset(&ref, 0, sizeof(ref));
    lrt_dots_rows(in->q, in->s8, in->u8, 0, in->len, &ref);
    lrt_gram_rows(in->q, 0, in->len, &ref);
    return memcmp(ref.dot, gm->dot, sizeof(ref.dot)) == 0 && ref.xabs == gm->xabs &&
           memcmp(ref.h, gm->h, sizeof(ref.h)) == 0;
}
#endif

static lrt_bound_t lrt_gram_side(const lrt_input_t *in, const lrt_scan_t *scan, lrt_gram_t *gm, lrt_bound_t u0)
{
    lrt_bound_t ug;
    if (in->q_exp == 0) {
        return u0;
    }
#if LRT_AVX512
    if (lrt_host_avx512()) {
        lrt_gram4_avx512(in->q, in->len, gm);
    }
#endif
#if LRT_AVX2
    if (lrt_host_avx2_only()) {
        lrt_gram4_avx2(in->q, in->len, gm);
    }
#endif
    ug = lrt_gram_bound(gm, scan, in->side, in->q_exp, in->f, in->len);
    return ug.u != 0 && ug.u < u0.u ? ug : u0;
}
#endif

/* 1 when the exact kappa test is sure to discard the term, from each side's bound: each bounds its
 * own rho, so the sides may be at different stages. *contract caches the column check (-1: not yet
 * made), which only a discard needs: from lrt_ext_unpack's column sums where it gave them
 * (scan_l, scan_r), else by a pass over the bases (scan_l NULL). */
static int lrt_early_discard(const et_lrt_state_t *st, const int32_t *e0_l, const int32_t *e0_r,
                             const lrt_scan_t *scan_l, const lrt_scan_t *scan_r, uint32_t kappa, lrt_bound_t l,
                             lrt_bound_t r, int *contract)
{
    if (l.u == 0 || r.u == 0 || !lrt_kappa_discards(st, kappa, l.u, l.e, r.u, r.e)) {
        return 0;
    }
    if (*contract < 0 && scan_l != NULL) { /* from the column sums lrt_ext_unpack gave */
        *contract = lrt_cols_within(scan_l->sq, st->rank, st->exp_l, st->f_l, st->n) &&
                    lrt_cols_within(scan_r->sq, st->rank, st->exp_r, st->f_r, st->m);
    } else if (*contract < 0) {
        *contract = lrt_cols_contract(lrt_ql(st), e0_l, st->rank, st->exp_l, st->f_l, st->n) &&
                    lrt_cols_contract(lrt_qr(st), e0_r, st->rank, st->exp_r, st->f_r, st->m);
    }
    return *contract;
}

/* [a (count values at a_exp); rho (at res_exp)] on one exponent with the largest magnitude below 2^bits
 * (one rounding each); all zero: exponent 0. */
static void lrt_align_n(const int64_t *a, int count, int a_exp, uint64_t rho, int res_exp, int bits, int64_t *out,
                        int *exp)
{
    int top = INT16_MIN;
    int j;
    for (j = 0; j < count; j++) {
        if (a[j] != 0 && lrt_bitlen(lrt_abs(a[j])) + a_exp > top) {
            top = lrt_bitlen(lrt_abs(a[j])) + a_exp;
        }
    }
    if (rho != 0 && lrt_bitlen(rho) + res_exp > top) {
        top = lrt_bitlen(rho) + res_exp;
    }
    if (top == INT16_MIN) {
        for (j = 0; j <= count; j++) {
            out[j] = 0;
        }
        *exp = 0;
        return;
    }
    *exp = top - bits;
    for (j = 0; j < count; j++) {
        out[j] = LRT_RSHIFT(a[j], *exp - a_exp);
    }
    out[count] = LRT_RSHIFT((int64_t)rho, *exp - res_exp);
}

/* [a; rho] on one exponent with the largest magnitude below 2^30. */
static void lrt_align(const lrt_side_t *s, int rank, int64_t *out, int *exp)
{
    lrt_align_n(s->a, rank, s->a_exp, s->rho, s->res_exp, 30, out, exp);
}

/* ---- the core SVD ---------------------------------------------------------------- */

/*
 * Jacobi rotation (Q30 cos, sin) that orthogonalises columns with squared
 * norms alpha, beta and inner product gamma. Returns 0 (no rotation) when
 * gamma^2 <= 4 (alpha + beta), the rounding noise of integer columns, or when
 * the angle rounds to zero.
 */
static int lrt_rotation(int64_t alpha, int64_t beta, int64_t gamma, int64_t *cs, int64_t *sn)
{
    uint64_t ag = lrt_abs(gamma);
    int64_t d;
    int64_t g;
    int64_t t;
    int sh;
    int bd;
    int bg;
    uint64_t hyp;
    if (ag < (UINT64_C(1) << 31) && ag * ag <= 4u * (uint64_t)(alpha + beta)) {
        return 0;
    }
    d = beta - alpha;
    g = 2 * gamma;
    bd = lrt_bitlen(lrt_abs(d));
    bg = lrt_bitlen(lrt_abs(g));
    sh = (bd > bg ? bd : bg) - 31;
    if (sh > 0) {
        d = LRT_RSHIFT(d, sh);
        g = LRT_RSHIFT(g, sh);
    }
    hyp = lrt_sqrt_round((uint64_t)(d * d) + (uint64_t)(g * g));
    t = lrt_div(g * LRT_Q30, (int64_t)(lrt_abs(d) + hyp));
    if (d < 0) {
        t = -t;
    }
    if (t == 0) {
        return 0;
    }
    *cs = lrt_div(INT64_C(1) << 60, (int64_t)lrt_sqrt_round((UINT64_C(1) << 60) + (uint64_t)(t * t)));
    *sn = et_round_shift_pos_inline(*cs * t, 30);
    return 1;
}

/*
 * The rounding rule by 30 written as one shift: floor(a 2^-30) + ((r + half - [a < 0]) >> 30)
 * (r = a mod 2^30) is floor((a + half - [a < 0]) 2^-30), as a - r is a multiple of 2^30. It
 * needs a + half < 2^63: |cs|, |sn| <= 2^30 + 1 and |x|, |y| < 2^31 keep |a| below 2^62 + 2^32.
 */
/* Columns i and j of mat rotated by (cs, sn) in Q30; with sq_i (and sq_j) not NULL, also the new
 * columns' sums of squares (what lrt_col_dot would give). */
ET_HOT_INLINE void lrt_rotate_cols(int32_t *mat, const int q, int i, int j, int64_t cs, int64_t sn, int64_t *sq_i,
                                   int64_t *sq_j)
{
    int r;
    const int32_t c32 = (int32_t)cs; /* |cs|, |sn| <= 2^30 + 1: 32 x 32 -> 64-bit products */
    const int32_t s32 = (int32_t)sn;
    int64_t si = 0;
    int64_t sj = 0;
    for (r = 0; r < q; r++) {
        int32_t x = mat[r * q + i];
        int32_t y = mat[r * q + j];
        int64_t a = (int64_t)c32 * x - (int64_t)s32 * y;
        int64_t b = (int64_t)s32 * x + (int64_t)c32 * y;
        int32_t xn = (int32_t)((a + (INT64_C(1) << 29) - (a < 0)) >> 30);
        int32_t yn = (int32_t)((b + (INT64_C(1) << 29) - (b < 0)) >> 30);
        mat[r * q + i] = xn;
        mat[r * q + j] = yn;
        if (sq_i != NULL) {
            si += (int64_t)xn * xn;
            sj += (int64_t)yn * yn;
        }
    }
    if (sq_i != NULL) {
        *sq_i = si;
        *sq_j = sj;
    }
}

ET_HOT_INLINE int64_t lrt_col_dot(const int32_t *mat, const int q, int i, int j)
{
    int64_t s = 0;
    int r;
    for (r = 0; r < q; r++) {
        s += (int64_t)mat[r * q + i] * mat[r * q + j];
    }
    return s;
}

/* The cyclic sweeps of et_lrt_svd on A (in u) and V, with the columns' squared norms in nrm2; a
 * sweep without a rotation leaves A and V unchanged, so the remaining sweeps would too. */
ET_HOT_INLINE void lrt_svd_sweeps(int32_t *u, int32_t *v, int64_t *nrm2, const int q)
{
    int sweep;
    int i;
    int j;
    for (sweep = 0; sweep < ET_LRT_JACOBI_SWEEPS; sweep++) {
        int rotated = 0;
        for (i = 0; i < q - 1; i++) {
            for (j = i + 1; j < q; j++) {
                int64_t cs;
                int64_t sn;
                if (lrt_rotation(nrm2[i], nrm2[j], lrt_col_dot(u, q, i, j), &cs, &sn)) {
                    lrt_rotate_cols(u, q, i, j, cs, sn, &nrm2[i], &nrm2[j]);
                    lrt_rotate_cols(v, q, i, j, cs, sn, NULL, NULL);
                    rotated = 1;
                }
            }
        }
        if (!rotated) {
            break;
        }
    }
}

static void lrt_swap_cols(int32_t *mat, int q, int i, int j)
{
    int r;
    for (r = 0; r < q; r++) {
        int32_t t = mat[r * q + i];
        mat[r * q + i] = mat[r * q + j];
        mat[r * q + j] = t;
    }
}

/* Stable sort of sigma, descending, moving the columns of u and v along. */
static void lrt_sort_desc(uint32_t *sigma, int q, int32_t *u, int32_t *v)
{
    int i;
    int j;
    for (i = 1; i < q; i++) {
        for (j = i; j > 0 && sigma[j - 1] < sigma[j]; j--) {
            uint32_t t = sigma[j - 1];
            sigma[j - 1] = sigma[j];
            sigma[j] = t;
            lrt_swap_cols(u, q, j - 1, j);
            lrt_swap_cols(v, q, j - 1, j);
        }
    }
}

et_status_t et_lrt_svd(const int32_t *c, int q, uint32_t *sigma, int32_t *u, int32_t *v)
{
    int i;
    int j;
    int k;
    int degenerate = 0;
    int64_t nrm2[LRT_QMAX]; /* squared column norms of A, recomputed when a rotation moves a column */
    if (c == NULL || sigma == NULL || u == NULL || v == NULL || q < 2 || q > LRT_QMAX) {
        return ET_ERR_ARG;
    }
    for (i = 0; i < q * q; i++) {
        if (c[i] > ET_LRT_CORE_MAX || c[i] < -ET_LRT_CORE_MAX) {
            return ET_ERR_ARG;
        }
    }
    if (u != c) {
        memcpy(u, c, sizeof(int32_t) * (size_t)q * (size_t)q);
    }
    memset(v, 0, sizeof(int32_t) * (size_t)q * (size_t)q);
    for (i = 0; i < q; i++) {
        v[i * q + i] = (int32_t)LRT_Q30;
    }
    for (k = 0; k < q; k++) {
        nrm2[k] = lrt_col_dot(u, q, k, k);
    }
    /* One-sided Jacobi on A (held in u); rank 4's core (q = 5) gets its own copy on the host with q
     * a constant (the loops unrolled), firmware one generic copy. */
    if (LRT_WIDE && q == 5) {
        lrt_svd_sweeps(u, v, nrm2, 5);
    } else {
        lrt_svd_sweeps(u, v, nrm2, q);
    }
    for (k = 0; k < q; k++) {
        sigma[k] = (uint32_t)lrt_sqrt_round((uint64_t)nrm2[k]);
    }
    lrt_sort_desc(sigma, q, u, v);
    /* U = A / sigma, then modified Gram-Schmidt in order of decreasing sigma. */
    for (k = 0; k < q; k++) {
        uint64_t nrm;
        if (sigma[k] == 0) {
            for (i = 0; i < q; i++) {
                u[i * q + k] = 0;
            }
            continue;
        }
        for (i = 0; i < q; i++) {
            u[i * q + k] = (int32_t)lrt_div((int64_t)u[i * q + k] * LRT_Q30, (int64_t)sigma[k]);
        }
        for (j = 0; j < k; j++) {
            int64_t proj = et_round_shift_pos_inline(lrt_col_dot(u, q, j, k), 30);
            if (proj != 0) {
                for (i = 0; i < q; i++) {
                    u[i * q + k] -= (int32_t)et_round_shift_pos_inline(proj * u[i * q + j], 30);
                }
            }
        }
        nrm = lrt_sqrt_round((uint64_t)lrt_col_dot(u, q, k, k));
        if (nrm < (UINT64_C(1) << 29)) {
            /* Less than 1/2 of A_k / sigma_k is orthogonal to the larger singular vectors:
             * sigma_k is rounding noise (a numerically zero singular value). Normalising
             * what is left would give a column that is neither unit nor orthogonal. */
            for (i = 0; i < q; i++) {
                u[i * q + k] = 0;
            }
            sigma[k] = 0;
            degenerate = 1;
            continue;
        }
        for (i = 0; i < q; i++) {
            u[i * q + k] = (int32_t)lrt_div((int64_t)u[i * q + k] * LRT_Q30, (int64_t)nrm);
        }
    }
    if (degenerate) {
        lrt_sort_desc(sigma, q, u, v);
    }
    for (k = 0; k < q; k++) {
        if (sigma[k] == 0) {
            for (i = 0; i < q; i++) {
                u[i * q + k] = 0;
                v[i * q + k] = 0;
            }
        }
    }
    return ET_OK;
}

/* ---- truncation to rank r ----------------------------------------------------------- */

et_status_t et_lrt_truncate(const uint32_t *sigma, int rank, int unbiased, uint32_t sign_bits, uint32_t *c_out,
                            int32_t *t_out, int *p_out)
{
    int q = rank + 1;
    int i;
    int j;
    int p;
    int k;
    uint64_t total = 0;
    uint64_t tail[LRT_QMAX];
    int64_t v[LRT_QMAX];
    uint64_t s1;
    int64_t share;
    int up;
    if (sigma == NULL || c_out == NULL || t_out == NULL || p_out == NULL || rank < 1 || rank > ET_LRT_MAX_RANK) {
        return ET_ERR_ARG;
    }
    for (i = 0; i < q; i++) {
        if (i > 0 && sigma[i] > sigma[i - 1]) {
            return ET_ERR_ARG;
        }
        total += sigma[i];
    }
    if (total >= (UINT64_C(1) << 32)) {
        return ET_ERR_ARG;
    }
    for (i = 0; i < q * rank; i++) {
        t_out[i] = (i / rank == i % rank) ? (int32_t)LRT_Q30 : 0;
    }
    if (!unbiased || sigma[q - 1] == 0) {
        for (i = 0; i < rank; i++) {
            c_out[i] = sigma[i];
        }
        *p_out = q;
        return ET_OK;
    }
    tail[q - 1] = sigma[q - 1];
    for (i = q - 2; i >= 0; i--) {
        tail[i] = tail[i + 1] + sigma[i];
    }
    p = q - 1; /* i = q-1 always qualifies: sigma_{q-1} <= sigma_{q-1} + sigma_q */
    for (i = 0; i < q; i++) {
        if ((uint64_t)(q - 1 - i) * sigma[i] <= tail[i]) {
            p = i + 1;
            break;
        }
    }
    k = q - p;
    s1 = tail[p - 1];
    /* x0 depends on the ratios sigma / s1 only: scale the block exactly so that
     * s1 lies in [2^31, 2^32) and the square roots keep 31 bits whatever its size. */
    up = 32 - lrt_bitlen(s1);
    up = up > 0 ? up : 0;
    for (i = 0; i <= k; i++) {
        uint64_t part = (s1 - (uint64_t)k * sigma[p - 1 + i]) << up; /* >= 0 by the choice of p */
        v[i] = lrt_div((int64_t)lrt_sqrt_round(part * (s1 << up)) * LRT_Q30, (int64_t)(s1 << up));
    }
    v[0] -= LRT_Q30; /* v = x0 - e1; v[0] in [-1, -(1 - 1/sqrt 2)] */
    for (i = 0; i <= k; i++) {
        int negate = (int)((sign_bits >> i) & 1u);
        for (j = 0; j < k; j++) {
            int64_t h = (i == j + 1 ? LRT_Q30 : 0) + lrt_div(v[i] * v[j + 1], v[0]);
            t_out[(p - 1 + i) * rank + (p - 1 + j)] = (int32_t)(negate ? -h : h);
        }
    }
    share = lrt_div((int64_t)s1, k);
    for (i = 0; i < rank; i++) {
        c_out[i] = i < p - 1 ? sigma[i] : (uint32_t)share;
    }
    *p_out = p;
    return ET_OK;
}

/* ---- accumulate ------------------------------------------------------------------------ */

/* out (q x r) = a (q x q) @ t (q x r), Q30, one rounding per entry. */
static void lrt_matmul_q30(const int32_t *a, const int32_t *t, int q, int rank, int32_t *out)
{
    int i;
    int k;
    int s;
    for (i = 0; i < q; i++) {
        for (k = 0; k < rank; k++) {
            int64_t acc = 0;
            for (s = 0; s < q; s++) {
                acc += (int64_t)a[i * q + s] * t[s * rank + k];
            }
            out[i * rank + k] = (int32_t)et_round_shift_pos_inline(acc, 30);
        }
    }
}

/*
 * round(v inv 2^-31), half away from zero, for |v| < 2^63 and inv <= 2^31 (the product may pass 2^63:
 * |v| inv = hi 2^32 + lo with hi = (|v| >> 32) inv < 2^62, and 2^31 divides hi 2^32).
 */
static int64_t lrt_scaled(int64_t v, uint32_t inv)
{
    uint64_t mag = lrt_abs(v);
    uint64_t hi = (mag >> 32) * inv;
    uint64_t lo = (mag & 0xFFFFFFFFu) * inv;
    uint64_t y = 2 * hi + ((lo + (UINT64_C(1) << 30)) >> 31);
    return v < 0 ? (int64_t)((uint64_t)0 - y) : (int64_t)y;
}

/*
 * The full-range scale of a new basis whose entries are at most bound (> 0) in magnitude, sh =
 * et_norm_shift_u64(bound, 15) (bound 2^-sh in [2^14, 2^15)): returns f = ceil(bound 2^16 / (32767
 * 2^sh)), at most 65535 (so f >= 2^15), the multiplier that brings the largest entry to 32767, and
 * inv = round(2^46 / f) (2^16 / f in Q30, in (2^30, 2^31]). The store pass forms every entry with the
 * weights times inv 2^-31 and rounds it by sh - 1: one rounding, to a mantissa q worth q f 2^(sh - 16)
 * of the entry's units. The quotient is taken without overflow: bound < 2^(15 + sh).
 */
static uint32_t lrt_full_range_scale(uint64_t bound, int sh, uint32_t *inv)
{
    uint64_t num;
    uint64_t den;
    uint64_t f;
    if (sh >= 16) {
        num = bound;
        den = (uint64_t)LRT_MANT_TOP << (sh - 16);
    } else if (sh >= 0) {
        num = bound << 16;
        den = (uint64_t)LRT_MANT_TOP << sh;
    } else {
        num = bound << (16 - sh);
        den = LRT_MANT_TOP;
    }
    f = (num + den - 1) / den;
    f = f > LRT_F_MAX ? LRT_F_MAX : f;
    *inv = (uint32_t)lrt_div(INT64_C(1) << (LRT_F_BITS + 30), (int64_t)f);
    return (uint32_t)f;
}

/*
 * Entry (i, k) of the new basis [Q, res/rho] M (M q x r, Q30) at 2^-60, exact:
 * the old basis enters as (sum_j E_ij m_jk) 2^(q_exp-b+30) with E its extended mantissas (column 1:
 * q 2^b + lo; the others q 2^b) and m_jk = round(M_jk f 2^-16) (q_exp >= -44: a left shift by at most
 * 14, or a rounding right shift), the residual column as res_i g_k with g_k = M_rk 2^30 / rho computed
 * once per term. |entry| < 2^63 for any mantissas: |sum| <= 2^48.5, |res_i g_k| <= 2^61 (docs/lrt.md).
 * The store pass scales every weight by inv 2^-31 <= 1 (lrt_rot_scale), which keeps these bounds.
 *
 * lrt_rot_t holds what is the same for every row (the weights live in the caller's M: the stack
 * stays small on a Cortex-M).
 */
typedef struct {
    int32_t *m;  /* the old basis' weights, the first r rows of M (q x r) */
    int64_t *g;
    int32_t *e0; /* column 1's extended mantissas: the old ones, replaced row by row by the store pass */
    int b;       /* their extra bits */
    int mode;    /* 0: empty old basis; 1: up >= 0 (an exact left shift); 2: up < 0 (a rounding right shift) */
    int up;
    uint32_t qmax; /* max |q| of the old basis where known (lrt_scan_t), else UINT32_MAX */
} lrt_rot_t;

/* The rotation of a basis at q_exp with multiplier f by M (its first r rows become m = round(M f 2^-16));
 * e0: its column 1 as extended mantissas (scratch). */
static void lrt_rot_init(lrt_rot_t *rt, int32_t *mrot, int rank, int q_exp, uint32_t f, int64_t *g, int32_t *e0)
{
    int i;
    rt->m = mrot;
    rt->g = g;
    rt->e0 = e0;
    rt->b = lrt_low_bits(rank);
    rt->up = q_exp - rt->b - LRT_WORK_EXP - 30; /* the extended mantissas' q_exp - b + 30: 0..14 for unit columns */
    rt->mode = q_exp == 0 ? 0 : (rt->up >= 0 ? 1 : 2);
    rt->qmax = UINT32_MAX;
    for (i = 0; rt->mode != 0 && i < rank * rank; i++) {
        mrot[i] = (int32_t)LRT_RSHIFT_POS((int64_t)mrot[i] * f, LRT_F_BITS); /* |M f| < 2^47 */
    }
}

/*
 * A bound on every |entry| of the new basis, capped at LRT_BOUND_CAP: max over k of
 * top sum_j |m_jk| 2^up (up < 0: shifted down, plus one for the rounding) + rmax |g_k|, with top a bound
 * on the old basis' extended mantissas and rmax the residual's largest |value| (lrt_abs_max_*). It replaces a pass that
 * would form every entry to find the peak; it lies within a few per cent of it (docs/lrt.md).
 */
static uint64_t lrt_rot_bound(const lrt_rot_t *rt, int rank, uint32_t top, uint64_t rmax)
{
    uint64_t bound = 0;
    int j;
    int k;
    for (k = 0; k < rank; k++) {
        uint64_t ag = lrt_abs(rt->g[k]);
        uint64_t b = rmax != 0 && ag > LRT_BOUND_CAP / rmax ? LRT_BOUND_CAP : rmax * ag;
        if (rt->mode != 0) {
            uint64_t t = 0;
            for (j = 0; j < rank; j++) {
                t += lrt_abs(rt->m[j * rank + k]); /* < 2^34 */
            }
            t *= top; /* < 2^51 */
            if (rt->up >= 0) {
                t = t >= (LRT_BOUND_CAP >> rt->up) ? LRT_BOUND_CAP : t << rt->up;
            } else {
                t = (t >> -rt->up) + (t != 0);
            }
            b += t; /* both <= 2^62 */
        }
        b = b > LRT_BOUND_CAP ? LRT_BOUND_CAP : b;
        bound = b > bound ? b : bound;
    }
    return bound;
}

/* The store pass' weights: every m_jk and g_k times inv 2^-31. */
static void lrt_rot_scale(lrt_rot_t *rt, int rank, uint32_t inv)
{
    int i;
    for (i = 0; rt->mode != 0 && i < rank * rank; i++) {
        rt->m[i] = (int32_t)lrt_scaled(rt->m[i], inv);
    }
    for (i = 0; i < rank; i++) {
        rt->g[i] = lrt_scaled(rt->g[i], inv);
    }
}

/* Row i of the new basis into out; rank is a constant where the callers below inline it. */
static inline void lrt_rot_row(const lrt_rot_t *rt, const int16_t *qrow, int32_t e0, int32_t res, int64_t *out,
                               const int rank)
{
    int j;
    int k;
    for (k = 0; k < rank; k++) {
        int64_t acc = 0;
        if (rt->mode != 0) {
            for (j = 1; j < rank; j++) {
                acc += (int64_t)qrow[j] * rt->m[j * rank + k];
            }
            acc = acc * ((int64_t)1 << rt->b) + (int64_t)e0 * rt->m[k];
            /* exact: |acc| <= 2^48.5, so acc 2^up < 2^63 */
            acc = rt->mode == 1 ? acc * ((int64_t)1 << rt->up) : et_round_shift_pos_inline(acc, -rt->up);
        }
        out[k] = acc + (int64_t)res * rt->g[k];
    }
}

/* The largest |entry| of the new basis, every entry formed (lrt_rot_plan's fallback). */
static uint64_t lrt_rot_max(const int16_t *q, uint32_t len, const lrt_rot_t *rt, const int32_t *res, int rank)
{
    uint64_t peak = 0;
    int64_t row[ET_LRT_MAX_RANK];
    uint32_t i;
    int k;
    for (i = 0; i < len; i++) {
        lrt_rot_row(rt, q + (size_t)i * rank, rt->e0[i], res[i], row, rank);
        for (k = 0; k < rank; k++) {
            uint64_t a = lrt_abs(row[k]);
            peak = a > peak ? a : peak;
        }
    }
    return peak;
}

/* x 2^-shift by the rounding rule for |x| < 2^62 (shift >= 1: at the offset 2^62, as in lrt_mgs_sweep32;
 * shift <= 0: an exact left shift, the value small enough to stay below 2^63). */
LRT_INLINE int64_t lrt_store_round(int64_t x, int shift)
{
    if (shift < 1) {
        return (int64_t)((uint64_t)x << -shift);
    }
    return (int64_t)((((uint64_t)x + (UINT64_C(1) << 62) + (UINT64_C(1) << (shift - 1)) - (uint64_t)(x < 0)) >> shift) -
                     (UINT64_C(1) << (62 - shift)));
}

/* Column 1's new entry: v = its 16 + b-bit value (clamped), kept in *e0, and the int16 part q = floor(v 2^-b). */
LRT_INLINE int16_t lrt_store_col1(int64_t v, int b, int32_t *e0)
{
    const int64_t top = (int64_t)1 << (15 + b);
    v = v < -top ? -top : (v > top - 1 ? top - 1 : v);
    *e0 = (int32_t)v;
    return (int16_t)((v - (v & (((int64_t)1 << b) - 1))) / ((int64_t)1 << b));
}

/* Overwrite q row by row with the new basis' int16 mantissas (the one rounding, shift 1..63 or <= 0;
 * column 1 by shift - b into rt->e0 and q). */
static inline void lrt_rot_write(int16_t *q, uint32_t len, const lrt_rot_t *rt, const int32_t *res, int shift,
                                 const int rank)
{
    int64_t row[ET_LRT_MAX_RANK];
    uint32_t i;
    int k;
    for (i = 0; i < len; i++) {
        int16_t *qrow = q + (size_t)i * rank;
        lrt_rot_row(rt, qrow, rt->e0[i], res[i], row, rank);
        qrow[0] = lrt_store_col1(et_round_shift_s64_inline(row[0], shift - rt->b), rt->b, rt->e0 + i);
        for (k = 1; k < rank; k++) {
            int64_t v = et_round_shift_s64_inline(row[k], shift);
            v = v < INT16_MIN ? INT16_MIN : v;
            qrow[k] = (int16_t)(v > INT16_MAX ? INT16_MAX : v);
        }
    }
}

/*
 * The same rows for the usual case (hosts, and Cortex-M with a long multiply: LRT_LONG_MUL),
 * written so that the compiler can vectorise across rows:
 * an empty old basis (mode 0, as a zero M) or 0 <= up <= 16 - b (mode 1), and |g_k| < 2^61, split
 * exactly as g_k = gh_k 2^31 + gl_k (gh_k = floor(g_k / 2^31), gl_k in [0, 2^31)) so that every
 * product is int32 x int32 -> int64. The row's operands carry the shifts: column 1's extended
 * mantissa times 2^up and the other columns' mantissas times 2^(b + up), each below 2^31 in
 * magnitude (|E| <= 2^(15 + b)), so that an entry is one sum of products and no 64-bit shift (on
 * Cortex-M one SMLAL each). Entries are summed modulo 2^64: the exact value, which lies below 2^63
 * (above). lrt_rot_fast says whether the case applies and fills gh, gl.
 */
static const int32_t lrt_zero_m[ET_LRT_MAX_RANK * ET_LRT_MAX_RANK];

static int lrt_rot_fast(const lrt_rot_t *rt, int rank, int32_t *gh, int32_t *gl)
{
    int k;
    if (rt->mode == 2 || (rt->mode == 1 && rt->up > 16 - rt->b)) {
        return 0;
    }
    for (k = 0; k < rank; k++) {
        if (rt->g[k] < -(INT64_C(1) << 61) || rt->g[k] >= (INT64_C(1) << 61)) {
            return 0;
        }
        gh[k] = (int32_t)(rt->g[k] >> 31);
        gl[k] = (int32_t)(rt->g[k] & 0x7FFFFFFF);
    }
    return 1;
}

/* Entry (i, k): s . M[:, k] + res g_k, s the row's operands (lrt_rot_write_fast). */
LRT_INLINE int64_t lrt_rot_entry(const int32_t *s, const int32_t *m, int32_t res, int32_t gh, int32_t gl,
                                 const int rank, int k)
{
    uint64_t acc = (uint64_t)((int64_t)res * gl) + ((uint64_t)((int64_t)res * gh) << 31);
    int j;
    if (rank == 4) { /* written out: gcc at -O2 keeps a four-step loop (Cortex-M: 6 instructions a product) */
        return (int64_t)(acc + (uint64_t)((int64_t)s[0] * m[k]) + (uint64_t)((int64_t)s[1] * m[4 + k]) +
                         (uint64_t)((int64_t)s[2] * m[8 + k]) + (uint64_t)((int64_t)s[3] * m[12 + k]));
    }
    for (j = 0; j < rank; j++) {
        acc += (uint64_t)((int64_t)s[j] * m[j * rank + k]);
    }
    return (int64_t)acc;
}

/* shift - b 1..47, every |entry| below 2^62 and at most the bound, so every rounded value lies in
 * int32 (|v| <= 2^16 + 1, 2^(16 + b) + 1 for column 1; lrt_rot_write4_avx2) and its low 32 bits
 * carry it; column 1 by shift - b to 16 + b bits (clamped), its int16 part floor(v 2^-b) taken at
 * the offset 2^(15+b) so that the shift is a logical one */
LRT_INLINE void lrt_rot_write_fast(int16_t *q, uint32_t len, const lrt_rot_t *rt, const int32_t *res, int shift,
                                   const int32_t *gh, const int32_t *gl, const int rank)
{
    const uint64_t k1 = (UINT64_C(1) << 62) + (UINT64_C(1) << (shift - 1));
    const uint32_t k2 = (uint32_t)(UINT64_C(1) << (62 - shift)); /* the offset's low 32 bits */
    const int b = rt->b;
    const uint64_t k10 = (UINT64_C(1) << 62) + (UINT64_C(1) << (shift - b - 1));
    const uint32_t k20 = (uint32_t)(UINT64_C(1) << (62 - shift + b));
    const int32_t top0 = (int32_t)1 << (15 + b);
    const int32_t *m = rt->mode == 0 ? lrt_zero_m : rt->m;
    int up = rt->mode == 0 ? 0 : rt->up;
    int32_t *e0 = rt->e0;
    uint32_t i;
    int k;
    for (i = 0; i < len; i++) {
        int16_t *qrow = q + (size_t)i * rank;
        int32_t s[ET_LRT_MAX_RANK];
        int64_t x;
        int32_t v0;
        s[0] = (int32_t)((uint32_t)e0[i] << up);
        for (k = 1; k < rank; k++) {
            s[k] = (int32_t)((uint32_t)(int32_t)qrow[k] << (b + up));
        }
        /* each entry rounded as it is formed: qrow is read only through s */
        for (k = 1; k < rank; k++) {
            /* the rounding at the offset 2^62 (|x| < 2^62), as in lrt_mgs_sweep32 */
            int32_t v;
            x = lrt_rot_entry(s, m, res[i], gh[k], gl[k], rank, k);
            v = (int32_t)((uint32_t)(((uint64_t)x + k1 - (uint64_t)(x < 0)) >> shift) - k2);
            v = v < INT16_MIN ? INT16_MIN : v;
            qrow[k] = (int16_t)(v > INT16_MAX ? INT16_MAX : v);
        }
        x = lrt_rot_entry(s, m, res[i], gh[0], gl[0], rank, 0);
        v0 = (int32_t)((uint32_t)(((uint64_t)x + k10 - (uint64_t)(x < 0)) >> (shift - b)) - k20);
        v0 = v0 < -top0 ? -top0 : (v0 > top0 - 1 ? top0 - 1 : v0);
        e0[i] = v0;
        qrow[0] = (int16_t)((int32_t)(((uint32_t)(v0 + top0)) >> b) - (top0 >> b));
    }
}

#if LRT_AVX2
/*
 * lrt_rot_write_fast at rank 4 (b = 2) with AVX2, four rows per step, on every CPU with AVX2 (the
 * compiler's AVX2 clone of that loop keeps its 64-bit lanes on the stack and reshuffles every row;
 * its x86-64-v4 clone is slower than this kernel too). The four rows' 16 mantissas come in one
 * vector, and two shifts put column j's into the low 32 bits of each row's 64-bit lane, which is
 * what vpmuldq reads. The sums and the rounding are those of lrt_rot_entry and lrt_rot_write_fast,
 * modulo 2^64 in 64-bit lanes. Every rounded value lies inside int32: the scaled entries are at
 * most the bound (or the exact peak plus the weights' roundings), which the shift brings to |v| <=
 * 2^16 + 1, 2^18 + 1 for column 1. So their low 32 bits carry them, and vpackssdw's saturation is
 * the int16 clamp. Column 1's low bits go into the plane as lrt_ext_pack puts them. The rows past
 * the last whole step take lrt_rot_write_fast and lrt_ext_pack_b. tests/test_lrt_multiversion.py
 * compares it with the portable loops, natively and under valgrind (an AVX2 CPU), and builds it out
 * with -DET_NO_LRT_AVX2; tests/c/lrt_avx2.c compares it with lrt_rot_write on rows made to reach
 * ties and both clamps.
 */
__attribute__((target("avx2"))) static void lrt_rot_write4_avx2(int16_t *q, uint8_t *plane, uint32_t len,
                                                                const lrt_rot_t *rt, const int32_t *res, int shift,
                                                                const int32_t *gh, const int32_t *gl)
{
    const int32_t *m = rt->mode == 0 ? lrt_zero_m : rt->m;
    const __m128i up = _mm_cvtsi32_si128(rt->mode == 0 ? 0 : rt->up);
    const __m128i sh = _mm_cvtsi32_si128(shift);
    const __m128i sh0 = _mm_cvtsi32_si128(shift - 2);
    const __m256i k1 = _mm256_set1_epi64x((int64_t)((UINT64_C(1) << 62) + (UINT64_C(1) << (shift - 1))));
    const __m256i k10 = _mm256_set1_epi64x((int64_t)((UINT64_C(1) << 62) + (UINT64_C(1) << (shift - 3))));
    /* the offsets' low 32 bits, taken off the low 32 bits of the shifted sums */
    const __m256i k2 = _mm256_set1_epi32((int32_t)(uint32_t)(UINT64_C(1) << (62 - shift)));
    const __m256i k20 = _mm256_set1_epi32((int32_t)(uint32_t)(UINT64_C(1) << (64 - shift)));
    const __m256i lo0 = _mm256_set1_epi32(-(INT32_C(1) << 17));
    const __m256i hi0 = _mm256_set1_epi32((INT32_C(1) << 17) - 1);
    const __m256i zero = _mm256_setzero_si256();
    const __m128i three = _mm_set1_epi32(3);
    const __m128i plane_sh = _mm_setr_epi32(0, 2, 4, 6);
    lrt_rot_t tail; /* the rows past the last whole step */
    __m256i w[4][6]; /* output k: column 1's weight (for e0), columns 2..4', g_k's two halves */
    int32_t *e0 = rt->e0;
    uint32_t i;
    int j;
    int k;
    for (k = 0; k < 4; k++) {
        for (j = 0; j < 4; j++) {
            w[k][j] = _mm256_set1_epi64x(m[j * 4 + k]);
        }
        w[k][4] = _mm256_set1_epi64x(gh[k]);
        w[k][5] = _mm256_set1_epi64x(gl[k]);
    }
    for (i = 0; i + 4u <= len; i += 4u) {
        __m256i qv = _mm256_loadu_si256((const __m256i *)(const void *)(q + (size_t)i * 4u));
        __m256i hi = _mm256_srli_epi64(qv, 32);
        __m256i q2 = _mm256_srai_epi32(qv, 16);
        __m256i q3 = _mm256_srai_epi32(_mm256_slli_epi32(hi, 16), 16);
        __m256i q4 = _mm256_srai_epi32(hi, 16);
        __m256i ev = _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(e0 + i)));
        __m256i rv = _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(res + i)));
        __m256i s[4];
        __m256i a;
        __m256i b;
        __m128i e;
        __m128i t;
        for (k = 0; k < 4; k++) {
            __m256i acc = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epi32(q2, w[k][1]), _mm256_mul_epi32(q3, w[k][2])),
                                           _mm256_mul_epi32(q4, w[k][3]));
            acc = _mm256_add_epi64(_mm256_slli_epi64(acc, 2), _mm256_mul_epi32(ev, w[k][0]));
            acc = _mm256_add_epi64(_mm256_sll_epi64(acc, up),
                                   _mm256_add_epi64(_mm256_slli_epi64(_mm256_mul_epi32(rv, w[k][4]), 31),
                                                    _mm256_mul_epi32(rv, w[k][5])));
            acc = _mm256_add_epi64(acc, _mm256_cmpgt_epi64(zero, acc)); /* - (entry < 0) */
            acc = k == 0 ? _mm256_srl_epi64(_mm256_add_epi64(acc, k10), sh0) : _mm256_srl_epi64(_mm256_add_epi64(acc, k1), sh);
            s[k] = _mm256_shuffle_epi32(acc, _MM_SHUFFLE(3, 1, 2, 0)); /* per half: its two rows' low words first */
        }
        s[0] = _mm256_min_epi32(_mm256_max_epi32(_mm256_sub_epi32(s[0], k20), lo0), hi0);
        e = _mm256_castsi256_si128(_mm256_permute4x64_epi64(s[0], _MM_SHUFFLE(3, 1, 2, 0)));
        _mm_storeu_si128((__m128i *)(void *)(e0 + i), e);
        t = _mm_sllv_epi32(_mm_and_si128(e, three), plane_sh); /* row i + t's low bits at bit 2t */
        t = _mm_or_si128(t, _mm_srli_si128(t, 8));
        t = _mm_or_si128(t, _mm_srli_si128(t, 4));
        plane[i / 4u] = (uint8_t)_mm_cvtsi128_si32(t);
        s[0] = _mm256_srai_epi32(s[0], 2); /* q = floor(v 2^-b) */
        a = _mm256_unpacklo_epi32(s[0], _mm256_sub_epi32(s[1], k2));
        b = _mm256_unpacklo_epi32(_mm256_sub_epi32(s[2], k2), _mm256_sub_epi32(s[3], k2));
        _mm256_storeu_si256((__m256i *)(void *)(q + (size_t)i * 4u),
                            _mm256_packs_epi32(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b)));
    }
    if (i < len) {
        tail = *rt;
        tail.e0 = e0 + i;
        lrt_rot_write_fast(q + (size_t)i * 4u, len - i, &tail, res + i, shift, gh, gl, 4);
        lrt_ext_pack_b(e0 + i, len - i, plane + i / 4u, 2);
    }
}
#endif

/* max |q_i| over a basis' len x rank mantissas (32-bit lanes: the compiler vectorises it). */
ET_HOT static uint32_t lrt_abs_max16(const int16_t *q, size_t count)
{
    int32_t hi = 0;
    int32_t lo = 0;
    size_t i;
    for (i = 0; i < count; i++) {
        int32_t v = q[i];
        hi = v > hi ? v : hi;
        lo = v < lo ? v : lo;
    }
    return (uint32_t)(hi > -lo ? hi : -lo);
}

/* max |res_i| of a residual (int32; the magnitude of INT32_MIN is 2^31). */
ET_HOT static uint64_t lrt_abs_max32(const int32_t *res, uint32_t len)
{
    int64_t hi = 0;
    int64_t lo = 0;
    uint32_t i;
    for (i = 0; i < len; i++) {
        int64_t v = res[i];
        hi = v > hi ? v : hi;
        lo = v < lo ? v : lo;
    }
    return (uint64_t)(hi > -lo ? hi : -lo);
}

/* g_k = M_rk 2^30 / rho (0 without a residual): the residual column's weights at 2^-60. */
static void lrt_rot_coef(const int32_t *mrot, int rank, uint64_t rho, int64_t *g)
{
    int k;
    for (k = 0; k < rank; k++) {
        g[k] = rho != 0 ? lrt_div((int64_t)mrot[rank * rank + k] * LRT_Q30, (int64_t)rho) : 0;
    }
}

/* c_new (r values on exponent e_c; c_new[0] = 0: all zero) as a state keeps c: 31-bit mantissas into out;
 * returns their exponent (0 when all zero), for the caller to check against int16. */
static int64_t lrt_c_stored(const uint32_t *c_new, int r, int64_t e_c, uint32_t *out)
{
    int c_sh = c_new[0] != 0 ? et_norm_shift_u64(c_new[0], 31) : 0;
    int k;
    for (k = 0; k < r; k++) {
        out[k] = c_new[0] != 0 ? (uint32_t)LRT_RSHIFT(c_new[k], c_sh) : 0u;
    }
    return c_new[0] != 0 ? e_c + c_sh : 0;
}

/* One side's new exponent (0: an empty basis), shift, multiplier and inv (lrt_full_range_scale). */
typedef struct {
    int exp;
    int sh;
    uint32_t f;
    uint32_t inv;
    uint64_t bound;
} lrt_scale_t;

static void lrt_rot_plan(const lrt_rot_t *rt, int rank, const int16_t *q, uint32_t len, const int32_t *res,
                         lrt_scale_t *sc)
{
    /* >= every |extended mantissa|: column 1's are q 2^b + lo with lo < 2^b */
    uint32_t qmax = rt->qmax != UINT32_MAX ? rt->qmax : (rt->mode != 0 ? lrt_abs_max16(q, (size_t)len * rank) : 0u);
    uint32_t top = rt->mode != 0 ? (qmax << rt->b) + (UINT32_C(1) << rt->b) - 1u : 0;
    uint64_t rmax = lrt_abs_max32(res, len);
    sc->bound = lrt_rot_bound(rt, rank, top, rmax);
    if (sc->bound != 0 && LRT_WORK_EXP + et_norm_shift_u64(sc->bound, 15) > LRT_BASIS_EXP_MAX) {
        /* a basis with entries near 1 (a few rows) and a loose bound: the exact peak instead */
        sc->bound = lrt_rot_max(q, len, rt, res, rank); /* reads rt->e0, which nothing has written yet */
    }
    sc->exp = 0;
    sc->sh = 0;
    sc->f = 0;
    sc->inv = 0;
    if (sc->bound != 0) {
        sc->sh = et_norm_shift_u64(sc->bound, 15);
        sc->exp = LRT_WORK_EXP + sc->sh;
        sc->f = lrt_full_range_scale(sc->bound, sc->sh, &sc->inv);
    }
}

/* The store pass of one side (its weights scaled in place first), or a zero basis. */
ET_HOT static void lrt_rot_commit_side(lrt_rot_t *rt, int rank, int16_t *q, uint8_t *plane, uint32_t len,
                                       const int32_t *res, const lrt_scale_t *sc)
{
    int32_t gh[ET_LRT_MAX_RANK];
    int32_t gl[ET_LRT_MAX_RANK];
    int shift = sc->sh - 1;
    if (sc->exp == 0) {
        memset(q, 0, sizeof(int16_t) * (size_t)len * (size_t)rank);
        memset(plane, 0, lrt_plane_bytes(len, rank));
        return;
    }
    lrt_rot_scale(rt, rank, sc->inv);
    if (LRT_LONG_MUL && shift - rt->b >= 1 && shift <= 47 && sc->bound < LRT_BOUND_CAP &&
        lrt_rot_fast(rt, rank, gh, gl)) {
        if (rank == 4) {
#if LRT_AVX2
            if (lrt_host_avx2()) { /* the plane too */
                lrt_rot_write4_avx2(q, plane, len, rt, res, shift, gh, gl);
                return;
            }
#endif
            lrt_rot_write_fast(q, len, rt, res, shift, gh, gl, 4);
        } else {
            lrt_rot_write_fast(q, len, rt, res, shift, gh, gl, rank);
        }
    } else if (!LRT_WIDE && rank == 4) {
        lrt_rot_write(q, len, rt, res, shift, 4);
    } else {
        lrt_rot_write(q, len, rt, res, shift, rank);
    }
    lrt_ext_pack(rt->e0, len, rank, plane);
}

/*
 * Rotate both bases (rot_l, rot_r prepared, residuals res_l, res_r) and set c to c_new (r values on
 * exponent e_c, 31-bit mantissas; c_new[0] = 0: all zero). The new exponents come from the bounds
 * (lrt_rot_bound) and are checked (with c's) before anything is written; ET_ERR_RANGE then, with
 * nothing changed.
 */
static et_status_t lrt_rotate_commit(et_lrt_state_t *st, lrt_rot_t *rot_l, const int32_t *res_l, lrt_rot_t *rot_r,
                                     const int32_t *res_r, const uint32_t *c_new, int64_t e_c)
{
    int r = st->rank;
    int k;
    uint32_t c_out[ET_LRT_MAX_RANK];
    int64_t new_ce = lrt_c_stored(c_new, r, e_c, c_out);
    lrt_scale_t sl;
    lrt_scale_t sr;
    lrt_rot_plan(rot_l, r, lrt_ql(st), st->n, res_l, &sl);
    lrt_rot_plan(rot_r, r, lrt_qr(st), st->m, res_r, &sr);
    if (!lrt_basis_exp_ok(sl.exp) || !lrt_basis_exp_ok(sr.exp) || !lrt_exp_ok16(new_ce)) {
        return ET_ERR_RANGE;
    }
    lrt_rot_commit_side(rot_l, r, lrt_ql(st), lrt_plane_l(st), st->n, res_l, &sl);
    lrt_rot_commit_side(rot_r, r, lrt_qr(st), lrt_plane_r(st), st->m, res_r, &sr);
    st->exp_l = (int16_t)sl.exp;
    st->exp_r = (int16_t)sr.exp;
    st->f_l = (uint16_t)sl.f;
    st->f_r = (uint16_t)sr.f;
    for (k = 0; k < r; k++) {
        st->c_mant[k] = c_out[k];
    }
    st->c_exp = (int16_t)new_ce;
    return ET_OK;
}

/*
 * Steps 3 to 5 of a term: the core C = diag(c, 0) + [a; rho_L][b; rho_R]^T (lv at 2^el, rv at 2^er, each
 * below 2^30; entries <= 2^25 on exponent e_c), its SVD and truncation. M_L, M_R (q x r, Q30) into ml, mr,
 * c_new (r values at *e_c); ua, va (q x q) and tt (q x r) are work space; rng draws one u32 when unbiased
 * and sigma_q > 0.
 */
static void lrt_core_step(const uint32_t *c_mant, int c_exp, int r, const int64_t *lv, int el, const int64_t *rv,
                          int er, int unbiased, et_prng_t *rng, int32_t *ua, int32_t *va, int32_t *tt, int32_t *ml,
                          int32_t *mr, uint32_t *c_new, int *e_c)
{
    int q = r + 1;
    int j;
    int k;
    int p;
    int top;
    uint64_t lmax = 0;
    uint64_t rmax = 0;
    uint32_t bits = 0;
    uint32_t sigma[LRT_QMAX];
    for (j = 0; j < q; j++) {
        lmax = lrt_abs(lv[j]) > lmax ? lrt_abs(lv[j]) : lmax;
        rmax = lrt_abs(rv[j]) > rmax ? lrt_abs(rv[j]) : rmax;
    }
    top = lrt_bitlen(lmax * rmax) + el + er;
    if (c_mant[0] != 0 && lrt_bitlen(c_mant[0]) + c_exp > top) {
        top = lrt_bitlen(c_mant[0]) + c_exp;
    }
    *e_c = top + 1 - LRT_CORE_BITS;
    for (j = 0; j < q; j++) {
        for (k = 0; k < q; k++) {
            int64_t e = LRT_RSHIFT(lv[j] * rv[k], *e_c - (el + er));
            if (j == k && j < r) {
                e += LRT_RSHIFT(c_mant[j], *e_c - c_exp);
            }
            ua[j * q + k] = (int32_t)e;
        }
    }
    (void)et_lrt_svd(ua, q, sigma, ua, va);
    if (unbiased && sigma[q - 1] != 0) {
        (void)et_prng_next_u32(rng, &bits);
    }
    (void)et_lrt_truncate(sigma, r, unbiased, bits, c_new, tt, &p);
    lrt_matmul_q30(ua, tt, q, r, ml);
    lrt_matmul_q30(va, tt, q, r, mr);
}

/* A term the kappa rule discards: counted, nothing else changes. */
static et_status_t lrt_discard(et_lrt_state_t *st)
{
    st->skipped += st->skipped < UINT32_MAX ? 1u : 0u;
    return ET_OK;
}

static et_status_t lrt_accumulate(et_lrt_state_t *st, const et_lrt_config_t *cfg, const int8_t *delta, int delta_exp,
                                  const int8_t *x_s8, const uint8_t *x_u8, int x_exp, void *scratch,
                                  size_t scratch_size, et_prng_t *prng)
{
    int r;
    int q;
    size_t need;
    int32_t *res_l;
    int32_t *res_r;
    int32_t *e0_l;
    int32_t *e0_r;
    int32_t *ua;
    int32_t *va;
    int32_t *tt;
    int32_t *ml;
    int32_t *mr;
    uint32_t s_d;
    uint32_t s_x;
    int kappa_on;
    lrt_side_t left;
    lrt_input_t in[2]; /* the sides: left (delta, Q_L), right (x, Q_R) */
    lrt_scan_t scan_l; /* the bases' column sums and largest mantissas, where the unpack gives them (sums) */
    lrt_scan_t scan_r;
    int sums;
    lrt_side_t right;
    int64_t lv[LRT_QMAX];
    int64_t rv[LRT_QMAX];
    int el;
    int er;
    int e_c;
    uint32_t c_new[ET_LRT_MAX_RANK];
    et_prng_t rng;
    int64_t gl[ET_LRT_MAX_RANK];
    int64_t gr[ET_LRT_MAX_RANK];
    lrt_rot_t rot_l;
    lrt_rot_t rot_r;

    if (!lrt_state_ok(st) || et_lrt_config_check(cfg) != ET_OK || cfg->rank != st->rank || delta == NULL ||
        (x_s8 == NULL && x_u8 == NULL) || scratch == NULL || ((uintptr_t)scratch & 3u) != 0 ||
        delta_exp < ET_LRT_EXP_MIN || delta_exp > ET_LRT_EXP_MAX || x_exp < ET_LRT_EXP_MIN ||
        x_exp > ET_LRT_EXP_MAX || (cfg->unbiased && (prng == NULL || prng->state == 0))) {
        return ET_ERR_ARG;
    }
    r = st->rank;
    q = r + 1;
    if (et_lrt_accumulate_get_buffer_size(st->n, st->m, (uint32_t)r, &need) != ET_OK || scratch_size < need) {
        return ET_ERR_NOMEM;
    }
    res_l = (int32_t *)scratch;
    res_r = res_l + st->n;
    e0_l = res_r + st->m;
    e0_r = e0_l + st->n;
    ua = e0_r + st->m;
    va = ua + q * q;
    tt = va + q * q;
    ml = tt + q * r;
    mr = ml + q * r;

    s_d = lrt_input_sumsq(delta, NULL, st->n);
    s_x = lrt_input_sumsq(x_s8, x_u8, st->m);
    if (s_d == 0 || s_x == 0) {
        st->terms += st->terms < UINT32_MAX ? 1u : 0u;
        return ET_OK; /* a zero term adds nothing */
    }

    /* 1. project onto the bases; residual norms. 2. kappa rule: discard when c_1 > kappa rho_L rho_R
     * (compared, never divided), decided early where the input's norms or the first pass show it */
    lrt_project_rescale(s_d, delta_exp, &left);
    lrt_project_rescale(s_x, x_exp, &right);
    kappa_on = cfg->kappa_th != 0 && st->c_mant[0] != 0;
#if LRT_GRAM /* read only where sums is 1 (which the compiler cannot see); firmware has no scan */
    memset(&scan_l, 0, sizeof(scan_l));
    memset(&scan_r, 0, sizeof(scan_r));
#endif
    sums = lrt_ext_unpack(lrt_ql(st), lrt_plane_l(st), st->n, r, e0_l, &scan_l);
    sums &= lrt_ext_unpack(lrt_qr(st), lrt_plane_r(st), st->m, r, e0_r, &scan_r);
    sums = LRT_GRAM && sums; /* a constant 0 elsewhere: firmware compiles none of what reads scan_l, scan_r */
    in[0] = (lrt_input_t){lrt_ql(st), e0_l, st->exp_l, st->f_l, delta, NULL, res_l, st->n, &left};
    in[1] = (lrt_input_t){lrt_qr(st), e0_r, st->exp_r, st->f_r, x_s8, x_u8, res_r, st->m, &right};
#ifdef ET_LRT_EARLY_CHECK
    {
        int known = -1;
        int early0 = kappa_on && lrt_early_discard(st, e0_l, e0_r, NULL, NULL, cfg->kappa_th,
                                                   lrt_bound(left.s0, left.a_exp, LRT_EARLY_MARGIN0),
                                                   lrt_bound(right.s0, right.a_exp, LRT_EARLY_MARGIN0), &known);
        int mixed;
        int contract = lrt_cols_contract(lrt_ql(st), e0_l, r, st->exp_l, st->f_l, st->n) &&
                       lrt_cols_contract(lrt_qr(st), e0_r, r, st->exp_r, st->f_r, st->m);
        if (sums) { /* the sums themselves and the verdict they give, against the pass' */
            uint64_t pass_l[ET_LRT_MAX_RANK];
            uint64_t pass_r[ET_LRT_MAX_RANK];
            lrt_cols_sums_r(lrt_ql(st), e0_l, r, st->n, pass_l);
            lrt_cols_sums_r(lrt_qr(st), e0_r, r, st->m, pass_r);
            et_lrt_early_stats[15] += 1;
            et_lrt_early_stats[16] +=
                (uint64_t)(memcmp(pass_l, scan_l.sq, sizeof(uint64_t) * (size_t)r) != 0 ||
                           memcmp(pass_r, scan_r.sq, sizeof(uint64_t) * (size_t)r) != 0 ||
                           scan_l.qmax != lrt_abs_max16(lrt_ql(st), (size_t)st->n * r) ||
                           scan_r.qmax != lrt_abs_max16(lrt_qr(st), (size_t)st->m * r) ||
                           contract != (lrt_cols_within(scan_l.sq, r, st->exp_l, st->f_l, st->n) &&
                                        lrt_cols_within(scan_r.sq, r, st->exp_r, st->f_r, st->m)));
        }
        int early;
        int applies;
        int gram = 0; /* the bounds from the dot products and Gram matrices applied */
        int sought = 0; /* and the estimates from the dot products would have run them */
        lrt_bound_t ug_l = {0, 0};
        lrt_bound_t ug_r = {0, 0};
        uint64_t ul0 = lrt_rho_bound(left.s0, LRT_EARLY_MARGIN0);
        uint64_t ur0 = lrt_rho_bound(right.s0, LRT_EARLY_MARGIN0);
        uint64_t ul;
        uint64_t ur;
        int el0 = left.a_exp;
        int er0 = right.a_exp;
        int el1;
        int er1;
        int exact;
#if LRT_GRAM
        if (sums && kappa_on && contract) {
            lrt_gram_t gm[2];
            sought = lrt_gram_sought(st, in, cfg->kappa_th, gm);
            ug_l = lrt_gram_side(&in[0], &scan_l, &gm[0], lrt_bound(left.s0, left.a_exp, LRT_EARLY_MARGIN0));
            ug_r = lrt_gram_side(&in[1], &scan_r, &gm[1], lrt_bound(right.s0, right.a_exp, LRT_EARLY_MARGIN0));
            gram = ug_l.u != 0 && ug_r.u != 0;
            et_lrt_early_stats[16] += (uint64_t)!lrt_gram_same(&in[0], &gm[0]) + (uint64_t)!lrt_gram_same(&in[1], &gm[1]);
        }
#endif
        lrt_project_begin(&in[0], r);
        lrt_project_begin(&in[1], r);
        early = cfg->gs_passes == 2 && kappa_on &&
                lrt_early_discard(st, e0_l, e0_r, NULL, NULL, cfg->kappa_th,
                                  lrt_bound(left.s1, left.e1, LRT_EARLY_MARGIN1),
                                  lrt_bound(right.s1, right.e1, LRT_EARLY_MARGIN1), &known);
        mixed = cfg->gs_passes == 2 && kappa_on &&
                lrt_early_discard(st, e0_l, e0_r, NULL, NULL, cfg->kappa_th,
                                  st->n <= st->m ? lrt_bound(left.s1, left.e1, LRT_EARLY_MARGIN1)
                                                 : lrt_bound(left.s0, left.a_exp, LRT_EARLY_MARGIN0),
                                  st->n <= st->m ? lrt_bound(right.s0, right.a_exp, LRT_EARLY_MARGIN0)
                                                 : lrt_bound(right.s1, right.e1, LRT_EARLY_MARGIN1), &known);
        applies = cfg->gs_passes == 2 && left.s1 < LRT_EARLY_S1_MAX && right.s1 < LRT_EARLY_S1_MAX && contract;
        ul = lrt_rho_bound(left.s1, LRT_EARLY_MARGIN1);
        ur = lrt_rho_bound(right.s1, LRT_EARLY_MARGIN1);
        el1 = left.e1;
        er1 = right.e1;
        lrt_project_end(&in[0], r, cfg->gs_passes);
        lrt_project_end(&in[1], r, cfg->gs_passes);
        exact = lrt_kappa_discards(st, cfg->kappa_th, left.rho, left.res_exp, right.rho, right.res_exp);
        if (applies) {
            int bad_l = lrt_above_bound(left.rho, left.res_exp, ul, el1);
            int bad_r = lrt_above_bound(right.rho, right.res_exp, ur, er1);
            et_lrt_early_stats[0] += 1;
            et_lrt_early_stats[1] += (uint64_t)(bad_l | bad_r);
            et_lrt_early_stats[4] += (uint64_t)(lrt_above_bound(left.rho, left.res_exp, et_isqrt_u64(left.s1) + 1, el1) |
                                                lrt_above_bound(right.rho, right.res_exp, et_isqrt_u64(right.s1) + 1, er1));
        }
        if (early) {
            et_lrt_early_stats[2] += 1;
            et_lrt_early_stats[3] += (uint64_t)!exact;
        }
        if (contract) { /* the bound before the first pass holds for either number of passes */
            et_lrt_early_stats[5] += 1;
            et_lrt_early_stats[6] += (uint64_t)(lrt_above_bound(left.rho, left.res_exp, ul0, el0) |
                                                lrt_above_bound(right.rho, right.res_exp, ur0, er0));
            et_lrt_early_stats[9] += (uint64_t)(lrt_above_bound(left.rho, left.res_exp, et_isqrt_u64(left.s0) + 1, el0) |
                                                lrt_above_bound(right.rho, right.res_exp, et_isqrt_u64(right.s0) + 1, er0));
        }
        if (early0) {
            et_lrt_early_stats[7] += 1;
            et_lrt_early_stats[8] += (uint64_t)!exact;
        }
        if (applies) { /* the shorter side after its first pass, the longer one before any */
            et_lrt_early_stats[10] += 1;
            et_lrt_early_stats[11] += (uint64_t)(st->n <= st->m ? lrt_above_bound(left.rho, left.res_exp, ul, el1) |
                                                                      lrt_above_bound(right.rho, right.res_exp, ur0, er0)
                                                                : lrt_above_bound(left.rho, left.res_exp, ul0, el0) |
                                                                      lrt_above_bound(right.rho, right.res_exp, ur, er1));
        }
        if (mixed) {
            et_lrt_early_stats[12] += 1;
            et_lrt_early_stats[13] += (uint64_t)!exact;
        }
        if (gram) {
            et_lrt_early_stats[17] += 1;
            et_lrt_early_stats[18] += (uint64_t)(lrt_above_bound(left.rho, left.res_exp, ug_l.u, ug_l.e) |
                                                 lrt_above_bound(right.rho, right.res_exp, ug_r.u, ug_r.e));
            if (lrt_kappa_discards(st, cfg->kappa_th, ug_l.u, ug_l.e, ug_r.u, ug_r.e)) {
                et_lrt_early_stats[19] += 1;
                et_lrt_early_stats[20] += (uint64_t)!exact;
                et_lrt_early_stats[21] += (uint64_t)!sought;
            }
        }
    }
#else
    {
        /* the shorter side first: its bound after its first pass times the other side's from its input
         * decides a discard before the longer side is touched (the threshold is symmetric in the sides) */
        const int first = st->n <= st->m ? 0 : 1;
        int early = kappa_on && cfg->gs_passes == 2; /* the tests after a first pass */
        int contract = -1;
        const lrt_scan_t *sums_l = sums ? &scan_l : NULL;
        lrt_bound_t u0[2]; /* per side, from its input (and on AVX-512 hosts its dot products with the basis) */
        lrt_bound_t u1[2]; /* in pass order, after the side's first pass */
        int p;
        if (kappa_on) {
            u0[0] = lrt_bound(left.s0, left.a_exp, LRT_EARLY_MARGIN0);
            u0[1] = lrt_bound(right.s0, right.a_exp, LRT_EARLY_MARGIN0);
            if (lrt_early_discard(st, e0_l, e0_r, sums_l, &scan_r, cfg->kappa_th, u0[0], u0[1], &contract)) {
                return lrt_discard(st);
            }
#if LRT_GRAM
            if (sums && st->n + st->m >= LRT_GRAM_MIN_ROWS) { /* the bounds from the dot products and Gram
                                                                 * matrices, still before any pass */
                lrt_gram_t gm[2];
                if (lrt_gram_sought(st, in, cfg->kappa_th, gm)) {
                    u0[0] = lrt_gram_side(&in[0], &scan_l, &gm[0], u0[0]);
                    u0[1] = lrt_gram_side(&in[1], &scan_r, &gm[1], u0[1]);
                    if (lrt_early_discard(st, e0_l, e0_r, sums_l, &scan_r, cfg->kappa_th, u0[0], u0[1], &contract)) {
                        return lrt_discard(st);
                    }
                }
            }
#endif
        }
        for (p = 0; p < 2; p++) {
            const lrt_input_t *cur = &in[p == 0 ? first : 1 - first];
            lrt_project_begin(cur, r);
            if (early) {
                u1[p] = lrt_bound(cur->side->s1, cur->side->e1, LRT_EARLY_MARGIN1);
                if (lrt_early_discard(st, e0_l, e0_r, sums_l, &scan_r, cfg->kappa_th, u1[p], p == 0 ? u0[1 - first] : u1[0],
                                      &contract)) {
                    return lrt_discard(st);
                }
            }
        }
    }
    lrt_project_end(&in[0], r, cfg->gs_passes);
    lrt_project_end(&in[1], r, cfg->gs_passes);
#endif
    if (kappa_on && lrt_kappa_discards(st, cfg->kappa_th, left.rho, left.res_exp, right.rho, right.res_exp)) {
        return lrt_discard(st);
    }

    /* 3.-5. core, SVD, truncation (a local copy of the PRNG is committed at the end) */
    lrt_align(&left, r, lv, &el);
    lrt_align(&right, r, rv, &er);
    rng.state = cfg->unbiased ? prng->state : 0u;
    lrt_core_step(st->c_mant, st->c_exp, r, lv, el, rv, er, cfg->unbiased, &rng, ua, va, tt, ml, mr, c_new, &e_c);

    /* 6. rotate both bases: the bounds give the new exponents, checked before anything is written */
    lrt_rot_coef(ml, r, left.rho, gl);
    lrt_rot_coef(mr, r, right.rho, gr);
    lrt_rot_init(&rot_l, ml, r, st->exp_l, st->f_l, gl, e0_l);
    lrt_rot_init(&rot_r, mr, r, st->exp_r, st->f_r, gr, e0_r);
    if (sums) { /* the unpack found the old bases' largest mantissas */
        rot_l.qmax = scan_l.qmax;
        rot_r.qmax = scan_r.qmax;
    }
    if (lrt_rotate_commit(st, &rot_l, res_l, &rot_r, res_r, c_new, e_c) != ET_OK) {
        return ET_ERR_RANGE;
    }
    if (cfg->unbiased) {
        *prng = rng;
    }
    st->terms += st->terms < UINT32_MAX ? 1u : 0u;
    if (cfg->reorth_terms != 0 && st->terms < UINT32_MAX && st->terms % cfg->reorth_terms == 0) {
        /* refused (ET_ERR_RANGE) only for bases far from orthonormal: then they stay as they are */
        (void)et_lrt_reorthonormalize(st, scratch, scratch_size);
    }
    return ET_OK;
}

et_status_t et_lrt_accumulate_s8(et_lrt_state_t *state, const et_lrt_config_t *cfg, const int8_t *delta,
                                 int delta_exp, const int8_t *x, int x_exp, void *scratch, size_t scratch_size,
                                 et_prng_t *prng)
{
    if (x == NULL) {
        return ET_ERR_ARG;
    }
    return lrt_accumulate(state, cfg, delta, delta_exp, x, NULL, x_exp, scratch, scratch_size, prng);
}

et_status_t et_lrt_accumulate_u8(et_lrt_state_t *state, const et_lrt_config_t *cfg, const int8_t *delta,
                                 int delta_exp, const uint8_t *x, int x_exp, void *scratch, size_t scratch_size,
                                 et_prng_t *prng)
{
    if (x == NULL) {
        return ET_ERR_ARG;
    }
    return lrt_accumulate(state, cfg, delta, delta_exp, NULL, x, x_exp, scratch, scratch_size, prng);
}

/* ---- batches of terms: the bases rounded once per batch ------------------------------ */

/*
 * docs/lrt.md, "Batches of terms". Within a batch the bases are not rewritten: the current basis of a
 * side is Q = [Q0, w_1 .. w_t] P, with Q0 the basis the batch started from, w_s one int16 column per
 * accepted term (its residual's direction, close to a unit vector on its own power of two) and P
 * ((r + t) x r, Q30) the coordinates, updated per term from the same core, SVD and truncation as one
 * term's. A term is projected against the whole frame (the same Gram-Schmidt passes), its coefficients
 * are taken into the current basis through P, and only the last term's rotation is written, once.
 */
#define LRT_COORD_BITS 28  /* frame coordinates [a; rho] aligned below 2^28 */
#define LRT_FRAME_GUARD 12 /* the batch rotation works at 2^(largest frame exponent - 30 - 12) */
#define LRT_UNIT_EXP 61    /* a new column is formed as res round(2^61 / rho) */
#define LRT_FRAME_MAX (ET_LRT_MAX_RANK + ET_LRT_BATCH_MAX)

typedef struct {
    const int16_t *q0; /* the basis the batch started from, len x rank, at exp0 (0: empty), multiplier f0 */
    int32_t *e0;       /* its column 1 as extended mantissas (scratch; the store pass writes the new ones) */
    int exp0;
    uint32_t f0;
    int16_t *cols;     /* column s at cols + s len: len int16 mantissas at 2^exps[s] (0: a zero column) */
    int exps[ET_LRT_BATCH_MAX];
    int t;             /* columns so far */
    int32_t *p;        /* coordinates of the current basis in [Q0, cols]: (rank + t) x rank, Q30 */
    uint32_t len;
} lrt_frame_t;

et_status_t et_lrt_accumulate_batch_get_buffer_size(uint32_t n_max, uint32_t m_max, uint32_t rank, uint32_t count_max,
                                                    size_t *bytes)
{
    size_t base = 0;
    size_t cols;
    if (bytes == NULL || count_max < 1 || count_max > ET_LRT_BATCH_MAX ||
        et_lrt_accumulate_get_buffer_size(n_max, m_max, rank, &base) != ET_OK) {
        return ET_ERR_ARG;
    }
    cols = 2 * (size_t)count_max * ((size_t)n_max + m_max);
    *bytes = base + ((cols + 3) & ~(size_t)3) + 8 * ((size_t)rank + count_max) * rank;
    return ET_OK;
}

static void lrt_frame_init(lrt_frame_t *fr, const int16_t *q0, int32_t *e0, int exp0, uint32_t f0, uint32_t len,
                           int rank, int16_t *cols, int32_t *p)
{
    int j;
    int k;
    fr->q0 = q0;
    fr->e0 = e0;
    fr->exp0 = exp0;
    fr->f0 = f0;
    fr->cols = cols;
    fr->t = 0;
    fr->p = p;
    fr->len = len;
    for (j = 0; j < rank; j++) {
        for (k = 0; k < rank; k++) {
            p[j * rank + k] = j == k ? (int32_t)LRT_Q30 : 0;
        }
    }
}

/* One Gram-Schmidt pass of res (s: its sum of squares; dot0: its dot product with Q0's first column)
 * against Q0's columns, then the frame's columns; the coefficients (rank + t) in the residual's units.
 * Returns the new sum of squares. */
static uint64_t lrt_frame_pass(const lrt_frame_t *fr, int rank, int32_t *res, uint64_t s, const int64_t *dot0,
                               int64_t *coef)
{
    s = lrt_mgs_pass(fr->q0, fr->e0, rank, fr->exp0, fr->f0, res, fr->len, s, dot0, coef);
    return fr->t > 0 ? lrt_mgs_pass_cols(fr->cols, 1, fr->len, fr->t, 0, LRT_F_ONE, fr->exps, res, fr->len,
                                         lrt_res_bound(s), NULL,
                                         coef + rank)
                     : s;
}

/* The input (s8 or u8 at 2^e0, sum of squares s > 0) projected as lrt_project_rescale/begin/end do,
 * against the whole frame: coefficients a at side->a_exp, the residual left in res at side->res_exp,
 * side->rho. */
static void lrt_frame_project(const lrt_frame_t *fr, int rank, const int8_t *s8, const uint8_t *u8, uint32_t s_in,
                              int32_t *res, int e0, int passes, lrt_side_t *side, int64_t *a)
{
    const int32_t *q0 = fr->exp0 != 0 ? fr->e0 : NULL; /* column 1 of Q0, for the fused dot products */
    int64_t a2[LRT_FRAME_MAX];
    int64_t dot0;
    uint64_t s;
    int e;
    int j;
    lrt_project_rescale(s_in, e0, side);
    dot0 = lrt_input_load(s8, u8, fr->len, side->k0, res, q0);
    e = side->a_exp;
    s = lrt_frame_pass(fr, rank, res, side->s0, &dot0, a);
    if (passes == 2 && s != 0) {
        e -= q0 != NULL ? lrt_rescale_dot(res, fr->len, s, &s, q0, &dot0) : lrt_rescale(res, fr->len, s, &s);
        s = lrt_frame_pass(fr, rank, res, s, &dot0, a2);
        for (j = 0; j < rank + fr->t; j++) {
            a[j] += LRT_RSHIFT(a2[j], side->a_exp - e);
        }
    }
    e -= lrt_rescale(res, fr->len, s, &s);
    side->res_exp = e;
    side->rho = lrt_sqrt_round(s);
}

/*
 * The term in the current basis Q = [Q0, w] P. y = [a; rho] on one exponent *ey below 2^28; aq = P^T y
 * (the coefficients on Q's columns), z = [y - P aq; y_rho] the residual against Q, in frame
 * coordinates; returns its norm rho_q (at *ey) and leaves v = z / rho_q (Q30; zero for rho_q = 0).
 * Bounds: P has orthonormal columns up to rounding, so its rows have norm <= 1 and |P^T y|, |P aq| <= |y|
 * (Cauchy-Schwarz): with |y| < 5 2^28 (25 entries below 2^28) every sum stays below 2^61 and z^2 summed
 * below 2^61; |z_j| <= rho_q + 1/2 keeps |v_j| <= 2^30.
 */
static uint64_t lrt_frame_coords(const lrt_frame_t *fr, int rank, const int64_t *a, const lrt_side_t *side,
                                 int64_t *aq, int *ey, int32_t *v)
{
    int t = rank + fr->t;
    int64_t y[LRT_FRAME_MAX + 1];
    int64_t z[LRT_FRAME_MAX + 1];
    uint64_t ss = 0;
    uint64_t rho;
    int j;
    int k;
    lrt_align_n(a, t, side->a_exp, side->rho, side->res_exp, LRT_COORD_BITS, y, ey);
    for (k = 0; k < rank; k++) {
        int64_t acc = 0;
        for (j = 0; j < t; j++) {
            acc += (int64_t)fr->p[j * rank + k] * y[j];
        }
        aq[k] = LRT_RSHIFT(acc, 30);
    }
    for (j = 0; j < t; j++) {
        int64_t acc = 0;
        for (k = 0; k < rank; k++) {
            acc += (int64_t)fr->p[j * rank + k] * aq[k];
        }
        z[j] = y[j] - LRT_RSHIFT(acc, 30);
    }
    z[t] = y[t];
    for (j = 0; j <= t; j++) {
        ss += (uint64_t)(z[j] * z[j]);
    }
    rho = lrt_sqrt_round(ss);
    for (j = 0; j <= t; j++) {
        v[j] = rho != 0 ? (int32_t)lrt_div(z[j] * LRT_Q30, (int64_t)rho) : 0;
    }
    return rho;
}

/*
 * The new column w = res / rho (res below 2^28, rho in [2^27, 2^28]) as int16 mantissas on a power of two:
 * w_i = round(res_i recip 2^-sh), recip = round(2^61 / rho), clamped to int16; returns its exponent
 * sh - 61. max |res_i recip| is max |res_i| recip (recip > 0), so the peak needs no products:
 * max |res_i| >= rho / 2^8 >= 2^19 (len < 2^16) and recip lies in [2^33, 2^34], so the peak lies in
 * [2^52, 2^62) and sh in 38..47. The rounding rule is taken at the offset 2^62 with logical shifts only,
 * as in lrt_mgs_sweep32 (the same values).
 */
ET_HOT static int lrt_frame_unit_col(const int32_t *res, uint32_t len, uint64_t rho, int16_t *col)
{
    int64_t recip = lrt_div(INT64_C(1) << LRT_UNIT_EXP, (int64_t)rho);
    uint32_t rmax = 0;
    uint32_t n;
    int sh;
    uint64_t k1;
    uint64_t k2;
    for (n = 0; n < len; n++) {
        uint32_t mag = (uint32_t)(res[n] < 0 ? -(int64_t)res[n] : res[n]);
        rmax = mag > rmax ? mag : rmax;
    }
    sh = et_norm_shift_u64((uint64_t)rmax * (uint64_t)recip, 15);
    k1 = (UINT64_C(1) << 62) + (UINT64_C(1) << (sh - 1));
    k2 = UINT64_C(1) << (62 - sh);
    for (n = 0; n < len; n++) {
        int64_t x = res[n] * recip;
        int64_t w = (int64_t)((((uint64_t)x + k1 - (uint64_t)(x < 0)) >> sh) - k2);
        col[n] = (int16_t)(w > INT16_MAX ? INT16_MAX : (w < INT16_MIN ? INT16_MIN : w));
    }
    return sh - LRT_UNIT_EXP;
}

/*
 * After a term's truncation M ((r + 1) x r, Q30): P <- [P, v] M (one rounding per entry; P gains a row for
 * the new column), and the new column w_t (lrt_frame_unit_col; a zero column for rho = 0).
 */
static void lrt_frame_advance(lrt_frame_t *fr, int rank, const int32_t *v, const int32_t *m, const int32_t *res,
                              uint64_t rho)
{
    int t = rank + fr->t;
    int16_t *col = fr->cols + (size_t)fr->t * fr->len;
    int64_t row[ET_LRT_MAX_RANK];
    int i;
    int j;
    int k;
    for (j = 0; j < t; j++) {
        for (k = 0; k < rank; k++) {
            int64_t acc = (int64_t)v[j] * m[rank * rank + k];
            for (i = 0; i < rank; i++) {
                acc += (int64_t)fr->p[j * rank + i] * m[i * rank + k];
            }
            row[k] = LRT_RSHIFT(acc, 30);
        }
        for (k = 0; k < rank; k++) {
            fr->p[j * rank + k] = (int32_t)row[k];
        }
    }
    for (k = 0; k < rank; k++) {
        fr->p[t * rank + k] = (int32_t)LRT_RSHIFT((int64_t)v[t] * m[rank * rank + k], 30);
    }
    if (rho == 0) {
        memset(col, 0, sizeof(int16_t) * fr->len);
        fr->exps[fr->t] = 0;
    } else {
        fr->exps[fr->t] = lrt_frame_unit_col(res, fr->len, rho, col);
    }
    fr->t++;
}

/* v 2^-sh: an exact left shift for sh <= 0, else the rounding rule. */
static int64_t lrt_frame_shift(int64_t v, int sh)
{
    return sh <= 0 ? (int64_t)((uint64_t)v << -sh) : LRT_RSHIFT(v, sh);
}

/*
 * The batch's rotation [Q0, w] P at 2^x, x = (largest live exponent) - 30 - 12. Q0 enters with its extended
 * mantissas E (column 1: e0; the others q 2^b, the 2^b folded into their weights) at exp0 - b; its r
 * products are summed first (|sum| <= 8 2^17 2^30.0001 < 2^50.1) and shifted by sh0 = x - (exp0 - b - 30)
 * >= b - 12, each column's product (< 2^45.1) by its own shift likewise: every shifted part is below
 * 2^60.1 (Q0) or 2^57.1 (each of at most 16 columns), so a row's entries stay below 2^62. Where every
 * shift is <= 0 (the usual case: exponents within 12 - b of each other) the shifts are exact and are
 * folded into the weights, g = P 2^-sh, and a row is a plain sum of products (the same values).
 */
typedef struct {
    int x;
    int exact;                                     /* every shift <= 0: g holds P 2^-sh */
    int sh0;                                       /* Q0's shift (Q0 empty: its weights are 0) */
    int sh[ET_LRT_BATCH_MAX];                      /* column s's shift */
    int64_t g0[ET_LRT_MAX_RANK * ET_LRT_MAX_RANK]; /* Q0's weights, r x r (rows 2 .. r times 2^b) */
    int64_t g[ET_LRT_BATCH_MAX * ET_LRT_MAX_RANK]; /* column s's weights at g + s r (0 for a zero column) */
} lrt_frame_rot_t;

/* The work exponent and weights; 0 when no frame column is live (the new basis is zero). Q0's weights
 * are round(P f0 2^-16); with inv != 0 (the store pass) every weight is then scaled by inv 2^-31
 * (lrt_full_range_scale). */
static int lrt_frame_rot_init(const lrt_frame_t *fr, int rank, uint32_t inv, lrt_frame_rot_t *fw)
{
    int top = fr->exp0;
    int live = fr->exp0 != 0;
    int s;
    int j;
    int k;
    for (s = 0; s < fr->t; s++) {
        if (fr->exps[s] != 0) {
            top = !live || fr->exps[s] > top ? fr->exps[s] : top;
            live = 1;
        }
    }
    if (!live) {
        return 0;
    }
    fw->x = top - 30 - LRT_FRAME_GUARD;
    fw->sh0 = fr->exp0 != 0 ? fw->x - (fr->exp0 - lrt_low_bits(rank) - 30) : 0;
    fw->exact = fw->sh0 <= 0;
    for (s = 0; s < fr->t; s++) {
        fw->sh[s] = fr->exps[s] != 0 ? fw->x - (fr->exps[s] - 30) : 0;
        fw->exact &= fw->sh[s] <= 0;
    }
    for (j = 0; j < rank; j++) {
        for (k = 0; k < rank; k++) {
            int64_t p = fr->exp0 != 0 ? LRT_RSHIFT((int64_t)fr->p[j * rank + k] * fr->f0, LRT_F_BITS) : 0;
            p = inv != 0 ? lrt_scaled(p, inv) : p;
            p = fw->exact ? lrt_frame_shift(p, fw->sh0) : p;
            fw->g0[j * rank + k] = j == 0 ? p : p * ((int64_t)1 << lrt_low_bits(rank)); /* |p| < 2^43 */
        }
    }
    for (s = 0; s < fr->t; s++) {
        for (k = 0; k < rank; k++) {
            int64_t p = fr->exps[s] != 0 ? fr->p[(rank + s) * rank + k] : 0;
            p = inv != 0 ? lrt_scaled(p, inv) : p;
            fw->g[s * rank + k] = fw->exact ? lrt_frame_shift(p, fw->sh[s]) : p;
        }
    }
    return 1;
}

/* Row i of the new basis at 2^x into out. */
LRT_INLINE void lrt_frame_row(const lrt_frame_t *fr, const lrt_frame_rot_t *fw, const int rank, uint32_t i,
                              int64_t *out)
{
    const int16_t *qrow = fr->q0 + (size_t)i * rank;
    const int64_t e0 = fr->exp0 != 0 ? fr->e0[i] : 0;
    int j;
    int k;
    int s;
    if (fw->exact) {
        for (k = 0; k < rank; k++) {
            int64_t acc = e0 * fw->g0[k];
            for (j = 1; j < rank; j++) {
                acc += qrow[j] * fw->g0[j * rank + k];
            }
            out[k] = acc;
        }
        for (s = 0; s < fr->t; s++) {
            int64_t w = fr->cols[(size_t)s * fr->len + i];
            for (k = 0; k < rank; k++) {
                out[k] += w * fw->g[s * rank + k];
            }
        }
        return;
    }
    for (k = 0; k < rank; k++) {
        int64_t dot = e0 * fw->g0[k];
        for (j = 1; j < rank; j++) {
            dot += qrow[j] * fw->g0[j * rank + k];
        }
        out[k] = lrt_frame_shift(dot, fw->sh0);
        for (s = 0; s < fr->t; s++) {
            out[k] += lrt_frame_shift(fr->cols[(size_t)s * fr->len + i] * fw->g[s * rank + k], fw->sh[s]);
        }
    }
}

/* Rows per block of the batch's rotation: a block's sums are held on the stack (8 bytes per row and column).
 * Hosts inline the block into each pass (with rank 4 a constant); firmware keeps one copy for both. */
#if LRT_WIDE
#define LRT_FRAME_BLOCK 32
#define LRT_FRAME_BLOCK_FN LRT_INLINE
#else
#define LRT_FRAME_BLOCK 8
#define LRT_FRAME_BLOCK_FN static
#endif

/*
 * Rows i0 .. i0 + cnt - 1 (cnt <= LRT_FRAME_BLOCK) of the new basis at 2^x into acc, column k at
 * acc + k LRT_FRAME_BLOCK. In the exact case column by column of the frame (the same sums in another
 * order: contiguous loads the compiler can vectorise), else row by row with the per-product roundings.
 */
LRT_FRAME_BLOCK_FN void lrt_frame_block(const lrt_frame_t *fr, const lrt_frame_rot_t *fw, const int rank, uint32_t i0,
                                        uint32_t cnt, int64_t *acc)
{
    uint32_t i;
    int j;
    int k;
    int s;
    if (!fw->exact) {
        int64_t row[ET_LRT_MAX_RANK];
        for (i = 0; i < cnt; i++) {
            lrt_frame_row(fr, fw, rank, i0 + i, row);
            for (k = 0; k < rank; k++) {
                acc[k * LRT_FRAME_BLOCK + i] = row[k];
            }
        }
        return;
    }
    for (k = 0; k < rank; k++) {
        for (i = 0; i < cnt; i++) {
            acc[k * LRT_FRAME_BLOCK + i] = 0;
        }
    }
    for (k = 0; fr->exp0 != 0 && k < rank; k++) {
        const int32_t *e0 = fr->e0 + i0;
        const int64_t g = fw->g0[k];
        int64_t *out = acc + k * LRT_FRAME_BLOCK;
        for (i = 0; i < cnt; i++) {
            out[i] += e0[i] * g;
        }
    }
    for (j = 1; fr->exp0 != 0 && j < rank; j++) {
        const int16_t *q = fr->q0 + (size_t)i0 * rank + j;
        for (k = 0; k < rank; k++) {
            const int64_t g = fw->g0[j * rank + k];
            int64_t *out = acc + k * LRT_FRAME_BLOCK;
            for (i = 0; i < cnt; i++) {
                out[i] += q[(size_t)i * rank] * g;
            }
        }
    }
    for (s = 0; s < fr->t; s++) {
        const int16_t *w = fr->cols + (size_t)s * fr->len + i0;
        for (k = 0; k < rank; k++) {
            const int64_t g = fw->g[s * rank + k];
            int64_t *out = acc + k * LRT_FRAME_BLOCK;
            if (g == 0) {
                continue; /* a zero column, or a zero weight */
            }
            for (i = 0; i < cnt; i++) {
                out[i] += w[i] * g;
            }
        }
    }
}

/*
 * The new basis block by block: with q NULL its peak (the largest |entry|), returned; else its entries
 * rounded by shift and clamped to int16, into q's rows, column 1 by shift - b into fr->e0 and q (the
 * peak below 2^62, so shift <= 47).
 */
LRT_INLINE uint64_t lrt_frame_walk_r(const lrt_frame_t *fr, const lrt_frame_rot_t *fw, const int rank, int shift,
                                     int16_t *q)
{
    int64_t acc[ET_LRT_MAX_RANK * LRT_FRAME_BLOCK];
    const uint64_t k1 = shift >= 1 ? (UINT64_C(1) << 62) + (UINT64_C(1) << (shift - 1)) : 0;
    const uint64_t k2 = shift >= 1 ? UINT64_C(1) << (62 - shift) : 0;
    const int b = lrt_low_bits(rank);
    uint64_t peak = 0;
    uint32_t i0;
    uint32_t i;
    int k;
    for (i0 = 0; i0 < fr->len; i0 += LRT_FRAME_BLOCK) {
        uint32_t cnt = fr->len - i0 < LRT_FRAME_BLOCK ? fr->len - i0 : LRT_FRAME_BLOCK;
        lrt_frame_block(fr, fw, rank, i0, cnt, acc);
        for (k = 0; k < rank; k++) {
            for (i = 0; i < cnt; i++) {
                int64_t x = acc[k * LRT_FRAME_BLOCK + i];
                int64_t v;
                if (q == NULL) {
                    uint64_t mag = lrt_abs(x);
                    peak = mag > peak ? mag : peak;
                    continue;
                }
                if (k == 0) {
                    q[(size_t)(i0 + i) * rank] = lrt_store_col1(lrt_store_round(x, shift - b), b, fr->e0 + i0 + i);
                    continue;
                }
                v = shift >= 1 ? (int64_t)((((uint64_t)x + k1 - (uint64_t)(x < 0)) >> shift) - k2)
                               : lrt_frame_shift(x, shift);
                q[(size_t)(i0 + i) * rank + k] = (int16_t)(v > INT16_MAX ? INT16_MAX : (v < INT16_MIN ? INT16_MIN : v));
            }
        }
    }
    return peak;
}

/* Pass 1 of the batch's rotation: the largest |entry| of the new basis at 2^x (0: all zero). */
ET_HOT static uint64_t lrt_frame_peak(const lrt_frame_t *fr, int rank, const lrt_frame_rot_t *fw)
{
    return LRT_WIDE && rank == 4 ? lrt_frame_walk_r(fr, fw, 4, 0, NULL) : lrt_frame_walk_r(fr, fw, rank, 0, NULL);
}

/* Pass 2: the new basis into q (which may be Q0 itself: a block's rows are read before they are written)
 * and column 1's low bits into plane; new_exp = 0 (no live column, or all zero) clears both. */
ET_HOT static void lrt_frame_store(const lrt_frame_t *fr, int rank, const lrt_frame_rot_t *fw, int shift,
                                   int new_exp, int16_t *q, uint8_t *plane)
{
    if (new_exp == 0) {
        memset(q, 0, sizeof(int16_t) * (size_t)fr->len * (size_t)rank);
        memset(plane, 0, lrt_plane_bytes(fr->len, rank));
        return;
    }
    if (LRT_WIDE && rank == 4) {
        (void)lrt_frame_walk_r(fr, fw, 4, shift, q);
    } else {
        (void)lrt_frame_walk_r(fr, fw, rank, shift, q);
    }
    lrt_ext_pack(fr->e0, fr->len, rank, plane);
}

static et_status_t lrt_accumulate_batch(et_lrt_state_t *st, const et_lrt_config_t *cfg, uint32_t count,
                                        const int8_t *deltas, const int32_t *delta_exps, const int8_t *xs_s8,
                                        const uint8_t *xs_u8, const int32_t *x_exps, void *scratch,
                                        size_t scratch_size, et_prng_t *prng)
{
    int r;
    int q;
    uint32_t t;
    int k;
    size_t need;
    size_t base = 0;
    lrt_scan_t scan; /* what lrt_ext_unpack gathers, not needed here */
    int32_t *res_l;
    int32_t *res_r;
    int32_t *e0_l;
    int32_t *e0_r;
    int32_t *ua;
    int32_t *va;
    int32_t *tt;
    int32_t *ml;
    int32_t *mr;
    lrt_frame_t fl;
    lrt_frame_t fr;
    lrt_side_t left;
    lrt_side_t right;
    int64_t al[LRT_FRAME_MAX];
    int64_t ar[LRT_FRAME_MAX];
    int64_t aql[ET_LRT_MAX_RANK];
    int64_t aqr[ET_LRT_MAX_RANK];
    int32_t vl[LRT_FRAME_MAX + 1];
    int32_t vr[LRT_FRAME_MAX + 1];
    int64_t lv[LRT_QMAX];
    int64_t rv[LRT_QMAX];
    uint32_t c_mant[ET_LRT_MAX_RANK];
    uint32_t c_new[ET_LRT_MAX_RANK];
    int c_exp;
    uint32_t terms;
    uint32_t skipped;
    uint32_t before;
    et_prng_t rng;

    if (!lrt_state_ok(st) || et_lrt_config_check(cfg) != ET_OK || cfg->rank != st->rank || deltas == NULL ||
        delta_exps == NULL || x_exps == NULL || (xs_s8 == NULL && xs_u8 == NULL) || count < 1 ||
        count > ET_LRT_BATCH_MAX || scratch == NULL || ((uintptr_t)scratch & 3u) != 0 ||
        (cfg->unbiased && (prng == NULL || prng->state == 0))) {
        return ET_ERR_ARG;
    }
    for (t = 0; t < count; t++) {
        if (delta_exps[t] < ET_LRT_EXP_MIN || delta_exps[t] > ET_LRT_EXP_MAX || x_exps[t] < ET_LRT_EXP_MIN ||
            x_exps[t] > ET_LRT_EXP_MAX) {
            return ET_ERR_ARG;
        }
    }
    r = st->rank;
    q = r + 1;
    if (et_lrt_accumulate_batch_get_buffer_size(st->n, st->m, (uint32_t)r, count, &need) != ET_OK ||
        scratch_size < need) {
        return ET_ERR_NOMEM;
    }
    (void)et_lrt_accumulate_get_buffer_size(st->n, st->m, (uint32_t)r, &base);
    res_l = (int32_t *)scratch;
    res_r = res_l + st->n;
    e0_l = res_r + st->m;
    e0_r = e0_l + st->n;
    ua = e0_r + st->m;
    va = ua + q * q;
    tt = va + q * q;
    ml = tt + q * r;
    mr = ml + q * r;
    (void)lrt_ext_unpack(lrt_ql(st), lrt_plane_l(st), st->n, r, e0_l, &scan);
    (void)lrt_ext_unpack(lrt_qr(st), lrt_plane_r(st), st->m, r, e0_r, &scan);
    {
        int16_t *cols_l = (int16_t *)((uint8_t *)scratch + base);
        size_t cols_bytes = 2 * (size_t)count * ((size_t)st->n + st->m);
        int32_t *p_l = (int32_t *)((uint8_t *)scratch + base + ((cols_bytes + 3) & ~(size_t)3));
        lrt_frame_init(&fl, lrt_ql(st), e0_l, st->exp_l, st->f_l, st->n, r, cols_l, p_l);
        lrt_frame_init(&fr, lrt_qr(st), e0_r, st->exp_r, st->f_r, st->m, r, cols_l + (size_t)count * st->n,
                       p_l + (r + (int)count) * r);
    }
    for (k = 0; k < r; k++) {
        c_mant[k] = st->c_mant[k];
    }
    c_exp = st->c_exp;
    terms = st->terms;
    skipped = st->skipped;
    rng.state = cfg->unbiased ? prng->state : 0u;

    for (t = 0; t < count; t++) {
        const int8_t *d = deltas + (size_t)t * st->n;
        const int8_t *x8 = xs_s8 != NULL ? xs_s8 + (size_t)t * st->m : NULL;
        const uint8_t *xu = xs_u8 != NULL ? xs_u8 + (size_t)t * st->m : NULL;
        uint32_t s_d = lrt_input_sumsq(d, NULL, st->n);
        uint32_t s_x = lrt_input_sumsq(x8, xu, st->m);
        int eyl;
        int eyr;
        int el;
        int er;
        int e_c;
        int64_t c_exp64;
        uint64_t rho_l;
        uint64_t rho_r;
        if (s_d == 0 || s_x == 0) {
            terms += terms < UINT32_MAX ? 1u : 0u; /* a zero term adds nothing */
            continue;
        }
        lrt_frame_project(&fl, r, d, NULL, s_d, res_l, delta_exps[t], cfg->gs_passes, &left, al);
        lrt_frame_project(&fr, r, x8, xu, s_x, res_r, x_exps[t], cfg->gs_passes, &right, ar);
        rho_l = lrt_frame_coords(&fl, r, al, &left, aql, &eyl, vl);
        rho_r = lrt_frame_coords(&fr, r, ar, &right, aqr, &eyr, vr);
        if (cfg->kappa_th != 0 && c_mant[0] != 0 &&
            lrt_kappa_discards_c(c_mant[0], c_exp, cfg->kappa_th, rho_l, eyl, rho_r, eyr)) {
            skipped += skipped < UINT32_MAX ? 1u : 0u;
            continue;
        }
        lrt_align_n(aql, r, eyl, rho_l, eyl, 30, lv, &el);
        lrt_align_n(aqr, r, eyr, rho_r, eyr, 30, rv, &er);
        lrt_core_step(c_mant, c_exp, r, lv, el, rv, er, cfg->unbiased, &rng, ua, va, tt, ml, mr, c_new, &e_c);
        lrt_frame_advance(&fl, r, vl, ml, res_l, left.rho);
        lrt_frame_advance(&fr, r, vr, mr, res_r, right.rho);
        c_exp64 = lrt_c_stored(c_new, r, e_c, c_mant);
        if (!lrt_exp_ok16(c_exp64)) {
            return ET_ERR_RANGE;
        }
        c_exp = (int)c_exp64;
        terms += terms < UINT32_MAX ? 1u : 0u;
    }

    if (fl.t > 0) {
        lrt_frame_rot_t wl;
        lrt_frame_rot_t wr;
        uint64_t pk_l = lrt_frame_rot_init(&fl, r, 0, &wl) ? lrt_frame_peak(&fl, r, &wl) : 0;
        uint64_t pk_r = lrt_frame_rot_init(&fr, r, 0, &wr) ? lrt_frame_peak(&fr, r, &wr) : 0;
        int sh_l = pk_l != 0 ? et_norm_shift_u64(pk_l, 15) : 0;
        int sh_r = pk_r != 0 ? et_norm_shift_u64(pk_r, 15) : 0;
        int new_el = pk_l != 0 ? wl.x + sh_l : 0;
        int new_er = pk_r != 0 ? wr.x + sh_r : 0;
        uint32_t inv_l = 0;
        uint32_t inv_r = 0;
        uint32_t f_l = pk_l != 0 ? lrt_full_range_scale(pk_l, sh_l, &inv_l) : 0;
        uint32_t f_r = pk_r != 0 ? lrt_full_range_scale(pk_r, sh_r, &inv_r) : 0;
        if (!lrt_basis_exp_ok(new_el) || !lrt_basis_exp_ok(new_er)) {
            return ET_ERR_RANGE;
        }
        if (new_el != 0) {
            (void)lrt_frame_rot_init(&fl, r, inv_l, &wl);
        }
        if (new_er != 0) {
            (void)lrt_frame_rot_init(&fr, r, inv_r, &wr);
        }
        lrt_frame_store(&fl, r, &wl, sh_l - 1, new_el, lrt_ql(st), lrt_plane_l(st));
        lrt_frame_store(&fr, r, &wr, sh_r - 1, new_er, lrt_qr(st), lrt_plane_r(st));
        st->exp_l = (int16_t)new_el;
        st->exp_r = (int16_t)new_er;
        st->f_l = (uint16_t)f_l;
        st->f_r = (uint16_t)f_r;
        for (k = 0; k < r; k++) {
            st->c_mant[k] = c_mant[k];
        }
        st->c_exp = (int16_t)c_exp;
    }
    if (cfg->unbiased) {
        *prng = rng;
    }
    before = st->terms;
    st->terms = terms;
    st->skipped = skipped;
    if (cfg->reorth_terms != 0 && terms < UINT32_MAX && terms / cfg->reorth_terms > before / cfg->reorth_terms) {
        (void)et_lrt_reorthonormalize(st, scratch, scratch_size);
    }
    return ET_OK;
}

et_status_t et_lrt_accumulate_batch_s8(et_lrt_state_t *state, const et_lrt_config_t *cfg, uint32_t count,
                                       const int8_t *deltas, const int32_t *delta_exps, const int8_t *xs,
                                       const int32_t *x_exps, void *scratch, size_t scratch_size, et_prng_t *prng)
{
    if (xs == NULL) {
        return ET_ERR_ARG;
    }
    return lrt_accumulate_batch(state, cfg, count, deltas, delta_exps, xs, NULL, x_exps, scratch, scratch_size, prng);
}

et_status_t et_lrt_accumulate_batch_u8(et_lrt_state_t *state, const et_lrt_config_t *cfg, uint32_t count,
                                       const int8_t *deltas, const int32_t *delta_exps, const uint8_t *xs,
                                       const int32_t *x_exps, void *scratch, size_t scratch_size, et_prng_t *prng)
{
    if (xs == NULL) {
        return ET_ERR_ARG;
    }
    return lrt_accumulate_batch(state, cfg, count, deltas, delta_exps, NULL, xs, x_exps, scratch, scratch_size, prng);
}

/* ---- flush --------------------------------------------------------------------------- */

et_status_t et_lrt_norms_init(et_lrt_norms_t *norms)
{
    if (norms == NULL) {
        return ET_ERR_ARG;
    }
    (void)et_maxnorm_init(&norms->l);
    (void)et_maxnorm_init(&norms->r);
    return ET_OK;
}

/* max |Q diag(sqrt c)| as a rounded integer and its exponent (Q at q_exp with multiplier f). */
static void lrt_factor_max(const int16_t *qm, uint32_t len, int rank, int q_exp, uint32_t f, const et_lrt_state_t *st,
                           uint64_t *max_abs, int32_t *exp)
{
    uint64_t best = 0;
    int32_t e = 2 * q_exp + st->c_exp;
    uint32_t i;
    int k;
    for (k = 0; k < rank; k++) {
        uint64_t peak = 0;
        uint64_t v;
        for (i = 0; i < len; i++) {
            uint64_t a = lrt_abs(qm[(size_t)i * rank + k]);
            peak = a > peak ? a : peak;
        }
        v = peak * peak * st->c_mant[k]; /* <= 2^30 * 2^31 */
        best = v > best ? v : best;
    }
    if (e & 1) {
        best <<= 1;
        e -= 1;
    }
    *max_abs = (uint64_t)LRT_RSHIFT((int64_t)(lrt_sqrt_round(best) * f), LRT_F_BITS); /* < 2^31.5 2^16 */
    *exp = e / 2;
}

static void lrt_stamp(const et_lrt_state_t *st, uint32_t *stamp)
{
    stamp[0] = st->terms;
    stamp[1] = st->skipped;
    stamp[2] = st->b_eff;
    stamp[3] = (uint32_t)(uint16_t)st->exp_l | ((uint32_t)(uint16_t)st->exp_r << 16);
    stamp[4] = (uint32_t)(uint16_t)st->c_exp;
    stamp[5] = st->c_mant[0];
}

/* Row i of dW into out (may be NULL: count only); returns its non-zero count. */
static uint32_t lrt_row(const et_lrt_state_t *st, const et_lrt_flush_t *fl, uint32_t i, int8_t *out)
{
    const int16_t *ql = lrt_ql(st) + (size_t)i * st->rank;
    const int16_t *qr = lrt_qr(st);
    const uint8_t *plane_r = lrt_plane_r(st);
    int64_t h[ET_LRT_MAX_RANK];
    uint32_t nz = 0;
    uint32_t j;
    int k;
    int r = st->rank;
    int b = lrt_low_bits(r);
    /* sum_k g_k E_L,ik E_R,jk with E the extended mantissas (|g| <= 2^(29 - 2b)): h_0 = g_0 E_L,i0 times
     * E_R,j0, h_k = g_k E_L,ik 2^b times q_R,jk (|h| <= 2^44) */
    h[0] = (int64_t)fl->g[0] * ((int64_t)ql[0] * ((int64_t)1 << b) + lrt_plane_lo(lrt_plane_l(st), i, b));
    for (k = 1; k < r; k++) {
        h[k] = (int64_t)fl->g[k] * ql[k] * ((int64_t)1 << (2 * b));
    }
    for (j = 0; j < st->m; j++) {
        int64_t acc = h[0] * ((int64_t)qr[(size_t)j * r] * ((int64_t)1 << b) + lrt_plane_lo(plane_r, j, b));
        int64_t w;
        for (k = 1; k < r; k++) {
            acc += h[k] * qr[(size_t)j * r + k]; /* |acc| <= 2^62 */
        }
        w = et_saturate_s64_inline(et_round_shift_s64_inline(acc, fl->shift), INT8_MIN, INT8_MAX); /* requantize to the weight grid */
        nz += w != 0;
        if (out != NULL) {
            out[j] = (int8_t)w;
        }
    }
    return nz;
}

et_status_t et_lrt_flush_begin(et_lrt_state_t *state, const et_lrt_config_t *cfg, et_lrt_norms_t *norms,
                               et_lrt_flush_t *flush)
{
    et_lrt_flush_t fl;
    uint32_t batch;
    uint64_t max_l;
    uint64_t max_r;
    int32_t exp_l;
    int32_t exp_r;
    int64_t den;
    int64_t quot[ET_LRT_MAX_RANK];
    int64_t top = 0;
    int64_t shift;
    int sh;
    int root_s;
    int k;
    uint32_t i;
    int r;
    if (!lrt_state_ok(state) || et_lrt_config_check(cfg) != ET_OK || cfg->rank != state->rank || flush == NULL ||
        (cfg->maxnorm && (norms == NULL || norms->l.beta_pow > (UINT32_C(1) << 30) ||
                          norms->r.beta_pow > (UINT32_C(1) << 30)))) {
        return ET_ERR_ARG;
    }
    r = state->rank;
    memset(&fl, 0, sizeof(fl));
    batch = state->kind == ET_LRT_CONV ? cfg->batch_conv : cfg->batch_dense;
    state->b_eff = state->b_eff > UINT32_MAX - batch ? UINT32_MAX : state->b_eff + batch;
    if (cfg->maxnorm) {
        lrt_factor_max(lrt_ql(state), state->n, r, state->exp_l, state->f_l, state, &max_l, &exp_l);
        lrt_factor_max(lrt_qr(state), state->m, r, state->exp_r, state->f_r, state, &max_r, &exp_r);
        (void)et_maxnorm_update(&norms->l, max_l, exp_l, &fl.div_l);
        (void)et_maxnorm_update(&norms->r, max_r, exp_r, &fl.div_r);
    } else {
        fl.div_l = et_ufloat_make(1, 0);
        fl.div_r = fl.div_l;
    }
    /* eta = eta0 sqrt(B_eff): B_eff shifted by an even 2s into [2^62, 2^64) keeps 31 bits of the root */
    root_s = (64 - lrt_bitlen(state->b_eff)) / 2;
    fl.eta = et_ufloat_make((uint64_t)cfg->eta0_q24 * lrt_sqrt_round((uint64_t)state->b_eff << (2 * root_s)),
                            (int32_t)(-24 - root_s));
    den = LRT_RSHIFT((int64_t)((uint64_t)fl.div_l.mant * fl.div_r.mant), 31); /* in [2^29, 2^31] */
    for (k = 0; k < r; k++) {
        quot[k] = lrt_div((int64_t)((uint64_t)fl.eta.mant * state->c_mant[k]), den);
        top = quot[k] > top ? quot[k] : top;
    }
    sh = lrt_bitlen((uint64_t)top) - (29 - 2 * lrt_low_bits(r)); /* the rows take E, 2 b bits wider than q */
    sh = sh > 0 ? sh : 0;
    for (k = 0; k < r; k++) {
        /* times the bases' multipliers f_l f_r 2^-32 (< 1; 0 for an empty basis): |g| stays <= 2^29 */
        fl.g[k] = (int32_t)LRT_RSHIFT(LRT_RSHIFT(quot[k], sh) * (int64_t)((uint64_t)state->f_l * state->f_r),
                                      2 * LRT_F_BITS);
    }
    /* dW = acc * 2^(eta.exp + c_exp - den_exp + sh + exp_l + exp_r) in units of 2^-7 */
    shift = -((int64_t)fl.eta.exp + state->c_exp - ((int64_t)fl.div_l.exp + fl.div_r.exp + 31) + sh + state->exp_l +
              state->exp_r - 2 * lrt_low_bits(r) + 7);
    fl.shift = (int32_t)LRT_SAT(shift, -1000000, 1000000);
    for (i = 0; i < state->n; i++) {
        fl.nonzero += lrt_row(state, &fl, i, NULL);
    }
    fl.apply = (uint64_t)fl.nonzero * 1000000u > (uint64_t)cfg->rho_min_ppm * state->n * state->m;
    lrt_stamp(state, fl.stamp);
    *flush = fl;
    return ET_OK;
}

et_status_t et_lrt_delta_row(const et_lrt_state_t *state, const et_lrt_flush_t *flush, uint32_t row, int8_t *out,
                             uint32_t *nonzero)
{
    uint32_t stamp[6];
    uint32_t nz;
    if (!lrt_state_ok(state) || flush == NULL || out == NULL || row >= state->n) {
        return ET_ERR_ARG;
    }
    lrt_stamp(state, stamp);
    if (memcmp(stamp, flush->stamp, sizeof(stamp)) != 0) {
        return ET_ERR_STATE;
    }
    nz = lrt_row(state, flush, row, out);
    if (nonzero != NULL) {
        *nonzero = nz;
    }
    return ET_OK;
}

/* ---- re-orthonormalisation ---------------------------------------------------------- */

/*
 * Gram matrix of the first p columns of a basis (len x rank int16 q, column 1 as extended mantissas e0,
 * exponent q_exp, multiplier f) in Q30 real units (E^T E at 2^(2 (q_exp - b) + 30), then times f 2^-16
 * twice, one rounding each), upper triangle into g (rank x rank). 0 when some entry is more than 1/(4p) from the identity:
 * then the eigenvalues of Q^T Q lie in [3/4, 5/4] (Gershgorin), which keeps every later
 * quantity within the bounds given at et_lrt_reorthonormalize.
 */
LRT_INLINE int lrt_gram_q30_r(const int16_t *q, const int32_t *e0, uint32_t len, const int rank, int p, int q_exp,
                              uint32_t f, int32_t *g)
{
    int j;
    int k;
    uint32_t i;
    int64_t tol = LRT_Q30 / (4 * p);
    const int b = lrt_low_bits(rank);
    for (j = 0; j < p; j++) {
        for (k = j; k < p; k++) {
            int64_t acc = 0; /* exact: |E| <= 2^17, len <= 65535, so |acc| < 2^50 */
            int64_t v;
            if (j == 0 && k == 0) {
                for (i = 0; i < len; i++) {
                    acc += (int64_t)e0[i] * e0[i];
                }
            } else if (j == 0) { /* E_k = q_k 2^b */
                for (i = 0; i < len; i++) {
                    acc += (int64_t)e0[i] * q[(size_t)i * rank + k];
                }
                acc *= (int64_t)1 << b;
            } else {
                for (i = 0; i < len; i++) {
                    acc += (int64_t)q[(size_t)i * rank + j] * q[(size_t)i * rank + k];
                }
                acc *= (int64_t)1 << (2 * b);
            }
            v = LRT_RSHIFT(acc, -(2 * (q_exp - b) + 30)); /* 2 (q_exp - b) + 30 <= 2: a left shift stays below 2^52 */
            if (lrt_abs(v) >= (UINT64_C(1) << 46)) {
                return 0; /* times f^2 2^-32 >= 2^44: far from the identity (and v f stays below 2^63) */
            }
            v = LRT_RSHIFT(LRT_RSHIFT(v * (int64_t)f, LRT_F_BITS) * (int64_t)f, LRT_F_BITS);
            if (lrt_abs(v - (j == k ? LRT_Q30 : 0)) > (uint64_t)tol) {
                return 0;
            }
            g[j * rank + k] = (int32_t)v;
        }
    }
    return 1;
}

/* Rank 4 (the default) with the rank a constant, as the accumulate's hot loops. */
ET_HOT static int lrt_gram_q30(const int16_t *q, const int32_t *e0, uint32_t len, int rank, int p, int q_exp,
                               uint32_t f, int32_t *g)
{
    return LRT_WIDE && rank == 4 ? lrt_gram_q30_r(q, e0, len, 4, p, q_exp, f, g)
                                 : lrt_gram_q30_r(q, e0, len, rank, p, q_exp, f, g);
}

/*
 * In place on the upper triangle (first p rows and columns of rank x rank, Q30): the Cholesky
 * factor R of the Gram matrix (G = R^T R). The eigenvalue bounds give |R_ij| <= sqrt(5/4) and
 * R_jj >= sqrt(3/4), so every sum stays within 2^61 and every entry within int32.
 */
static void lrt_cholesky(int32_t *a, int rank, int p)
{
    int i;
    int j;
    int k;
    for (j = 0; j < p; j++) {
        int64_t d = (int64_t)a[j * rank + j] * LRT_Q30;
        int64_t rjj;
        for (i = 0; i < j; i++) {
            d -= (int64_t)a[i * rank + j] * a[i * rank + j];
        }
        rjj = (int64_t)lrt_sqrt_round((uint64_t)d);
        a[j * rank + j] = (int32_t)rjj;
        for (k = j + 1; k < p; k++) {
            int64_t s = (int64_t)a[j * rank + k] * LRT_Q30;
            for (i = 0; i < j; i++) {
                s -= (int64_t)a[i * rank + j] * a[i * rank + k];
            }
            a[j * rank + k] = (int32_t)lrt_div(s, rjj);
        }
    }
}

/*
 * In place: the upper triangular R (Q30) becomes X = R^-1 (Q30), from the bottom row up (row j
 * of X needs row j of R and the rows of X below it). Columns of X have norms <= 2/sqrt(3).
 */
static void lrt_upper_inverse(int32_t *a, int rank, int p)
{
    int64_t row[ET_LRT_MAX_RANK];
    int i;
    int j;
    int k;
    for (j = p - 1; j >= 0; j--) {
        int64_t rjj = a[j * rank + j];
        row[j] = lrt_div(INT64_C(1) << 60, rjj);
        for (k = j + 1; k < p; k++) {
            int64_t s = 0;
            for (i = j + 1; i <= k; i++) {
                s += (int64_t)a[j * rank + i] * a[i * rank + k];
            }
            row[k] = -lrt_div(s, rjj);
        }
        for (k = j; k < p; k++) {
            a[j * rank + k] = (int32_t)row[k];
        }
    }
}

/* Entry (j, k) of R_L diag(c) R_R^T before scaling: sum over i of round(R_L[j][i] R_R[k][i] 2^-30) c24_i. */
static int64_t lrt_core_entry(const int32_t *rl, const int32_t *rr, const int64_t *c24, int rank, int p, int j, int k)
{
    int64_t acc = 0;
    int i;
    for (i = j > k ? j : k; i < p; i++) {
        acc += LRT_RSHIFT((int64_t)rl[j * rank + i] * rr[k * rank + i], 30) * c24[i];
    }
    return acc;
}

et_status_t et_lrt_reorthonormalize(et_lrt_state_t *state, void *scratch, size_t scratch_size)
{
    int r;
    int p = 0;
    int qq;
    int j;
    int k;
    size_t need;
    lrt_scan_t scan; /* what lrt_ext_unpack gathers, not needed here */
    int32_t *zero_l;
    int32_t *zero_r;
    int32_t *e0_l;
    int32_t *e0_r;
    int32_t *xl;
    int32_t *xr;
    int32_t *u;
    int32_t *v;
    int32_t *ml;
    uint32_t sigma[LRT_QMAX];
    int64_t c24[ET_LRT_MAX_RANK];
    int64_t g0l[ET_LRT_MAX_RANK] = {0};
    int64_t g0r[ET_LRT_MAX_RANK] = {0};
    uint64_t kmax = 0;
    int cs;
    int ks;
    int64_t e_k;
    lrt_rot_t rot_l;
    lrt_rot_t rot_r;

    if (!lrt_state_ok(state) || scratch == NULL || ((uintptr_t)scratch & 3u) != 0) {
        return ET_ERR_ARG;
    }
    r = state->rank;
    if (et_lrt_accumulate_get_buffer_size(state->n, state->m, (uint32_t)r, &need) != ET_OK || scratch_size < need) {
        return ET_ERR_NOMEM;
    }
    while (p < r && state->c_mant[p] != 0) {
        p++;
    }
    if (p == 0 || state->exp_l == 0 || state->exp_r == 0) {
        return ET_OK; /* nothing held */
    }
    qq = r < 2 ? 2 : r;
    zero_l = (int32_t *)scratch;
    zero_r = zero_l + state->n;
    e0_l = zero_r + state->m;
    e0_r = e0_l + state->n;
    xl = e0_r + state->m;
    xr = xl + r * r;
    u = xr + r * r;
    v = u + qq * qq;
    ml = v + qq * qq;
    memset(xl, 0, sizeof(int32_t) * (size_t)(2 * r * r + qq * qq));

    /* Q = Q' R on each side (Cholesky of the Gram matrix), so Q_L diag(c) Q_R^T = Q'_L K Q'_R^T */
    (void)lrt_ext_unpack(lrt_ql(state), lrt_plane_l(state), state->n, r, e0_l, &scan);
    (void)lrt_ext_unpack(lrt_qr(state), lrt_plane_r(state), state->m, r, e0_r, &scan);
    if (!lrt_gram_q30(lrt_ql(state), e0_l, state->n, r, p, state->exp_l, state->f_l, xl) ||
        !lrt_gram_q30(lrt_qr(state), e0_r, state->m, r, p, state->exp_r, state->f_r, xr)) {
        return ET_ERR_RANGE;
    }
    lrt_cholesky(xl, r, p);
    lrt_cholesky(xr, r, p);

    /* K = R_L diag(c) R_R^T with c on 24 bits, scaled so that its largest entry is below 2^24 */
    cs = lrt_bitlen(state->c_mant[0]) - 24;
    for (k = 0; k < p; k++) {
        c24[k] = LRT_RSHIFT((int64_t)state->c_mant[k], cs);
    }
    for (j = 0; j < p; j++) {
        for (k = 0; k < p; k++) {
            uint64_t a = lrt_abs(lrt_core_entry(xl, xr, c24, r, p, j, k));
            kmax = a > kmax ? a : kmax;
        }
    }
    ks = lrt_bitlen(kmax) - 24;
    e_k = (int64_t)state->c_exp + cs - 30 + ks;
    for (j = 0; j < p; j++) {
        for (k = 0; k < p; k++) {
            u[j * qq + k] = (int32_t)LRT_RSHIFT(lrt_core_entry(xl, xr, c24, r, p, j, k), ks);
        }
    }

    /* K = U diag(sigma) V^T; the new bases are Q_L R_L^-1 U and Q_R R_R^-1 V */
    (void)et_lrt_svd(u, qq, sigma, u, v);
    lrt_upper_inverse(xl, r, p);
    lrt_upper_inverse(xr, r, p);
    /* M_L = X_L U, M_R = X_R V (q = r: the first r rows and columns; X is zero beyond p) */
    lrt_matmul_q30(xl, u, r, r, ml);
    lrt_matmul_q30(xr, v, r, r, u);

    memset(zero_l, 0, sizeof(int32_t) * ((size_t)state->n + state->m));
    lrt_rot_init(&rot_l, ml, r, state->exp_l, state->f_l, g0l, e0_l);
    lrt_rot_init(&rot_r, u, r, state->exp_r, state->f_r, g0r, e0_r);
    /* sigma_1 > 0 (K_11 is about c_1 2^-cs): column 1 of both new bases is a unit vector */
    return lrt_rotate_commit(state, &rot_l, zero_l, &rot_r, zero_r, sigma, e_k);
}
