/*
 * edgetrain — gradient max-norm and its unsigned software float (et_maxnorm.h).
 */
#include <string.h>

#include "edgetrain/et_fixed.h"
#include "edgetrain/et_maxnorm.h"
#include "maxnorm_inline.h"

#define ET_UFLOAT_EXP_LIMIT (INT32_C(1) << 24)
#define ET_MAXNORM_EXP_LIMIT (INT32_C(1) << 20)
#define ET_Q30_ONE (UINT32_C(1) << 30)

static int32_t et_clamp_exp(int64_t e)
{
    return (int32_t)et_saturate_s64(e, -ET_UFLOAT_EXP_LIMIT, ET_UFLOAT_EXP_LIMIT);
}

/* v / 2^s for v >= 0, rounded half up (= ties away from zero for magnitudes); s in 1..63. */
static uint64_t et_round_shift_u64(uint64_t v, int s)
{
    return (v >> s) + ((v >> (s - 1)) & 1u);
}

et_ufloat_t et_ufloat_make(uint64_t v, int32_t exp)
{
    et_ufloat_t r = {0, 0};
    int64_t e = exp;
    int bits;
    if (v == 0) {
        return r;
    }
    bits = 64 - et_clz_u64(v);
    if (bits > 31) {
        int s = bits - 31;
        uint64_t m = et_round_shift_u64(v, s);
        if (m == (UINT64_C(1) << 31)) {
            m >>= 1;
            s += 1;
        }
        r.mant = (uint32_t)m;
        e += s;
    } else {
        r.mant = (uint32_t)(v << (31 - bits));
        e -= 31 - bits;
    }
    r.exp = et_clamp_exp(e);
    return r;
}

et_ufloat_t et_ufloat_add(et_ufloat_t a, et_ufloat_t b)
{
    int64_t d;
    if (a.mant == 0) {
        return b;
    }
    if (b.mant == 0) {
        return a;
    }
    if (a.exp < b.exp) {
        et_ufloat_t t = a;
        a = b;
        b = t;
    }
    d = (int64_t)a.exp - b.exp;
    if (d >= 32) {
        return a; /* b is below half an LSB of a: the rounded sum is a */
    }
    return et_ufloat_make(((uint64_t)a.mant << d) + b.mant, b.exp);
}

int et_ufloat_cmp(et_ufloat_t a, et_ufloat_t b)
{
    if (a.mant == 0 || b.mant == 0) {
        return (a.mant > b.mant) - (a.mant < b.mant);
    }
    if (a.exp != b.exp) {
        return a.exp > b.exp ? 1 : -1;
    }
    return (a.mant > b.mant) - (a.mant < b.mant);
}

/* a * q / 2^30 for a Q30 factor q. */
static et_ufloat_t et_ufloat_mul_q30(et_ufloat_t a, uint32_t q)
{
    if (a.mant == 0) {
        return a;
    }
    return et_ufloat_make((uint64_t)a.mant * q, (int32_t)et_saturate_s64((int64_t)a.exp - 30, INT32_MIN, INT32_MAX));
}

/* a / (q / 2^30) for a Q30 divisor q >= 1, rounded once. */
static et_ufloat_t et_ufloat_div_q30(et_ufloat_t a, uint32_t q)
{
    uint64_t num;
    uint64_t quot;
    uint64_t rem;
    if (a.mant == 0) {
        return a;
    }
    num = (uint64_t)a.mant << 32;
    quot = num / q;
    rem = num % q;
    if (rem >= q - rem) {
        quot += 1;
    }
    return et_ufloat_make(quot, (int32_t)et_saturate_s64((int64_t)a.exp + 30 - 32, INT32_MIN, INT32_MAX));
}

et_status_t et_maxnorm_init(et_maxnorm_t *mn)
{
    if (mn == NULL) {
        return ET_ERR_ARG;
    }
    mn->count = 0;
    mn->beta_pow = ET_Q30_ONE;
    mn->moving = et_ufloat_make(1, ET_MAXNORM_EPS_EXP);
    return ET_OK;
}

et_status_t et_maxnorm_update(et_maxnorm_t *mn, uint64_t max_abs, int32_t exp, et_ufloat_t *divisor)
{
    et_ufloat_t x_max;
    et_ufloat_t x_tilde;
    uint32_t correction;
    if (mn == NULL || divisor == NULL || exp < -ET_MAXNORM_EXP_LIMIT || exp > ET_MAXNORM_EXP_LIMIT ||
        mn->beta_pow > ET_Q30_ONE) {
        return ET_ERR_ARG;
    }
    if (mn->count < UINT32_MAX) {
        mn->count += 1;
    }
    x_max = et_ufloat_add(et_ufloat_make(max_abs, exp), et_ufloat_make(1, ET_MAXNORM_EPS_EXP));
    mn->beta_pow = (uint32_t)et_round_shift_u64((uint64_t)mn->beta_pow * ET_MAXNORM_BETA_Q30, 30);
    mn->moving = et_ufloat_add(et_ufloat_mul_q30(mn->moving, ET_MAXNORM_BETA_Q30),
                               et_ufloat_mul_q30(x_max, ET_Q30_ONE - ET_MAXNORM_BETA_Q30));
    correction = ET_Q30_ONE - mn->beta_pow; /* 1 - beta^k > 0 for k >= 1 */
    x_tilde = et_ufloat_div_q30(mn->moving, correction);
    *divisor = et_ufloat_cmp(x_max, x_tilde) >= 0 ? x_max : x_tilde;
    return ET_OK;
}

et_status_t et_maxnorm_scale(int64_t x, int32_t x_exp, uint32_t factor, int32_t factor_exp,
                             et_ufloat_t divisor, int fmt, int64_t *out)
{
    et_format_t f;
    int64_t num;
    int64_t quot;
    int64_t s;
    if (out == NULL || et_format_get(fmt, &f) != ET_OK || f.bits > 32 || divisor.mant == 0 ||
        x <= -(INT64_C(1) << 31) || x >= (INT64_C(1) << 31) || factor >= (UINT32_C(1) << 31) ||
        x_exp < -ET_MAXNORM_EXP_LIMIT || x_exp > ET_MAXNORM_EXP_LIMIT ||
        factor_exp < -ET_MAXNORM_EXP_LIMIT || factor_exp > ET_MAXNORM_EXP_LIMIT) {
        return ET_ERR_ARG;
    }
    num = x * (int64_t)factor; /* |num| < 2^62 */
    s = (int64_t)x_exp + factor_exp - divisor.exp - f.lsb_exp;
    if (num == 0) {
        quot = 0;
    } else if (s >= 0) {
        if (s >= 62 || num > (INT64_MAX >> s) || num < -(INT64_MAX >> s)) {
            /* The quotient is at least 2^63 / 2^31: beyond any format of 32 bits. */
            quot = num > 0 ? INT64_MAX : INT64_MIN;
        } else {
            (void)et_div_round_s64(num * ((int64_t)1 << s), (int64_t)divisor.mant, &quot);
        }
    } else if (s <= -33) {
        quot = 0; /* divisor * 2^-s >= 2^63 > 2|num| */
    } else {
        (void)et_div_round_s64(num, (int64_t)divisor.mant << (-s), &quot);
    }
    *out = et_saturate_s64(quot, f.qmin, f.qmax);
    return ET_OK;
}

et_status_t et_maxnorm_scaler_init(et_maxnorm_scaler_t *sc, int32_t x_exp, uint32_t factor, int32_t factor_exp,
                                   et_ufloat_t divisor, int fmt, uint64_t xmax)
{
    et_format_t f;
    int64_t s;
    uint64_t lim;
    uint64_t xneed;
    uint64_t from;
    if (sc == NULL) {
        return ET_ERR_ARG;
    }
    memset(sc, 0, sizeof(*sc)); /* fast = 0: et_maxnorm_scale decides, unless the checks below pass */
    sc->factor = factor;
    sc->x_exp = x_exp;
    sc->factor_exp = factor_exp;
    sc->divisor = divisor;
    sc->fmt = fmt;
    if (et_format_get(fmt, &f) != ET_OK || f.bits > 32 || divisor.mant < (UINT32_C(1) << 30) ||
        divisor.mant >= (UINT32_C(1) << 31) || factor >= (UINT32_C(1) << 31) || x_exp < -ET_MAXNORM_EXP_LIMIT ||
        x_exp > ET_MAXNORM_EXP_LIMIT || factor_exp < -ET_MAXNORM_EXP_LIMIT || factor_exp > ET_MAXNORM_EXP_LIMIT) {
        return ET_OK; /* et_maxnorm_scale decides (and rejects) at apply */
    }
    s = (int64_t)x_exp + factor_exp - divisor.exp - f.lsb_exp;
    if (s < -32 || s > 61) {
        return ET_OK; /* every non-zero quotient is 0, or every one saturates: et_maxnorm_scale is quick */
    }
    sc->qmin = f.qmin;
    sc->qmax = f.qmax;
    sc->wide = (uint8_t)(f.qmin <= -(INT64_C(1) << 31) + 1 && f.qmax >= (INT64_C(1) << 31) - 1);
    sc->xmax = (uint32_t)(xmax < (UINT64_C(1) << 31) - 1 ? xmax : (UINT64_C(1) << 31) - 1);
    sc->den = 2 * divisor.mant;
    sc->recip = (uint32_t)(UINT64_MAX / sc->den - (UINT64_C(1) << 32));
    lim = (uint64_t)sc->den << 31; /* q >= 2^31 <=> y >= lim */
    if (s >= 0) {
        sc->lshift = (uint8_t)(s + 1);
        sc->bias = divisor.mant;
        /* y = X * 2^lshift + mant >= lim <=> X >= ceil((lim - mant) / 2^lshift), X = |x| * factor */
        xneed = ((lim - divisor.mant) + ((UINT64_C(1) << sc->lshift) - 1u)) >> sc->lshift;
    } else {
        sc->lshift = 1;
        sc->rshift = (uint8_t)(-s);
        sc->bias = (uint64_t)divisor.mant << (-s);
        /* y >= lim <=> 2X + bias >= lim * 2^rshift; 2X + bias < 2^64 <= lim * 4 */
        xneed = s == -1 ? lim - divisor.mant : UINT64_MAX;
    }
    from = factor == 0 ? UINT64_MAX : xneed / factor + (xneed % factor != 0);
    sc->sat_from = (uint32_t)(from < (uint64_t)sc->xmax + 1 ? from : (uint64_t)sc->xmax + 1);
    if (s >= 0 && sc->sat_from > 1) {
        /* |x| = 1 is in the fast range: factor << lshift <= y(1) < lim < 2^63 */
        sc->mul = (uint64_t)factor << sc->lshift;
    }
    sc->fast = 1;
    return ET_OK;
}

et_status_t et_maxnorm_scaler_apply(const et_maxnorm_scaler_t *sc, int64_t x, int64_t *out)
{
    if (sc == NULL || out == NULL) {
        return ET_ERR_ARG;
    }
    return et_maxnorm_scaler_apply_inline(sc, x, out);
}
