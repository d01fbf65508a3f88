/*
 * edgetrain — the numeric contract (see et_fixed.h and docs/numerics.md).
 *
 * Portable C99, integer only. Requires two's complement and an arithmetic
 * right shift of negative values (every supported compiler and target).
 */
#include "edgetrain/et_fixed.h"
#include "fixed_inline.h"

#if (-1 >> 1) != -1
#error "edgetrain requires an arithmetic right shift of negative integers"
#endif

const char *et_status_name(int status)
{
    switch (status) {
    case ET_OK: return "ET_OK";
    case ET_ERR_ARG: return "ET_ERR_ARG";
    case ET_ERR_NOMEM: return "ET_ERR_NOMEM";
    case ET_ERR_CORRUPT: return "ET_ERR_CORRUPT";
    case ET_ERR_VERSION: return "ET_ERR_VERSION";
    case ET_ERR_RANGE: return "ET_ERR_RANGE";
    case ET_ERR_IO: return "ET_ERR_IO";
    case ET_ERR_UNSUPPORTED: return "ET_ERR_UNSUPPORTED";
    case ET_ERR_STATE: return "ET_ERR_STATE";
    case ET_ERR_WORN: return "ET_ERR_WORN";
    default: return "ET_ERR_UNKNOWN";
    }
}

/* ---- number formats ---------------------------------------------------- */

static const et_format_t et_format_table[ET_FMT_COUNT] = {
    /* bits signed lsb_exp qmin qmax */
    {8, 1, -7, INT8_MIN, INT8_MAX},       /* ET_FMT_WEIGHT */
    {16, 1, -12, INT16_MIN, INT16_MAX},   /* ET_FMT_BIAS */
    {8, 0, -7, 0, UINT8_MAX},             /* ET_FMT_ACT */
    {8, 0, -8, 0, UINT8_MAX},             /* ET_FMT_INPUT */
    {8, 1, -7, INT8_MIN, INT8_MAX},       /* ET_FMT_GRAD */
    {8, 1, -6, INT8_MIN, INT8_MAX},       /* ET_FMT_BN_OUT */
    {16, 1, -9, INT16_MIN, INT16_MAX},    /* ET_FMT_BN_SQ */
    {32, 1, 0, INT32_MIN, INT32_MAX},     /* ET_FMT_ACC32 */
    {64, 1, 0, INT64_MIN, INT64_MAX},     /* ET_FMT_ACC64 */
};

et_status_t et_format_get(int id, et_format_t *out)
{
    if (out == NULL || id < 0 || id >= ET_FMT_COUNT) {
        return ET_ERR_ARG;
    }
    *out = et_format_table[id];
    return ET_OK;
}

/* ---- the rounding rule and the saturation rule -------------------------- */

int64_t et_round_shift_s64(int64_t x, int shift)
{
    return et_round_shift_s64_inline(x, shift);
}

int64_t et_saturate_s64(int64_t x, int64_t lo, int64_t hi)
{
    return et_saturate_s64_inline(x, lo, hi);
}

et_status_t et_requantize(int64_t x, int shift, int fmt, int64_t *out)
{
    if (out == NULL || fmt < 0 || fmt >= ET_FMT_COUNT) {
        return ET_ERR_ARG;
    }
    *out = et_saturate_s64(et_round_shift_s64(x, shift), et_format_table[fmt].qmin,
                           et_format_table[fmt].qmax);
    return ET_OK;
}

/* ---- integer helpers ------------------------------------------------------ */

/*
 * floor(sqrt(x)), exact, two ways (the same value).
 *
 * Hosts with a 64-bit divide instruction (x86-64, AArch64): integer Newton from above on xn = x 2^z
 * (z even, xn in [2^62, 2^64)), with floor(sqrt(x)) = floor(floor(sqrt(xn)) / 2^(z/2)) (nested
 * floors). r0 = et_isqrt_seed[top byte of xn] >= floor(sqrt(xn)), within 1/128 of it; the step
 * r' = floor((r + floor(xn / r)) / 2) = floor((r + xn / r) / 2) (nested floors) is >=
 * floor(sqrt(xn)) by AM-GM and < r while r > floor(sqrt(xn)) (then xn / r < r), so the sequence
 * falls strictly to floor(sqrt(xn)), where the next step is no smaller: the loop stops there.
 * r < 2^32 and xn / r < 2^33, so r + xn / r never overflows. Three or four divisions (six from a
 * power of two, as this was before: the table is 768 bytes of host code only).
 *
 * Elsewhere (Cortex-M: 32-bit registers, a 32-bit divide at most): x < 2^32 takes the 32-bit
 * root (et_isqrt_u32: the same split one size down, over a table). Larger x is scaled by an even
 * 2^z into xn in [2^62, 2^64), with floor(sqrt(x)) = floor(floor(sqrt(xn)) / 2^(z/2)) (nested
 * floors). With hi = floor(xn / 2^32) (>= 2^30) and s = floor(sqrt(hi)) (in [2^15, 2^16)),
 * sqrt(xn) = s 2^16 + d where 0 <= d < 2^16 and num = xn - s^2 2^32 = d (s 2^17 + d), i.e.
 * num / (s 2^17) = d + d^2 / (s 2^17), with
 * 0 <= d^2 / (s 2^17) < 2^32 / 2^32 = 1. So r = s 2^16 + floor(floor(num / 2^17) / s)
 * (= s 2^16 + floor(num / (s 2^17))) is floor(sqrt(xn)) or one more: one compare of r^2 with xn
 * corrects it. num < (2s + 1) 2^32 <= 2^49, so num / 2^17 and the quotient are 32-bit, and r is
 * below 2^32 (r^2 fits in 64 bits) except at s = 2^16 - 1, where it is clamped first (still >=
 * floor(sqrt(xn))). -DET_ISQRT_SPLIT (tests) builds this path on any host.
 */
#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(ET_ISQRT_SPLIT)
#define ET_ISQRT_NEWTON 1
#else
#define ET_ISQRT_NEWTON 0
#endif

#if ET_ISQRT_NEWTON
/* et_isqrt_u64's start: et_isqrt_seed[t - 64] = floor(sqrt((t + 1) 2^56 - 1)), the root of the largest
 * xn whose top byte is t (64..255); tests/test_fixed_paths.py checks every entry at its boundary. */
static const uint32_t et_isqrt_seed[192] = {
    2164195835u, 2180779953u, 2197238903u, 2213575477u, 2229792364u, 2245892157u,
    2261877356u, 2277750374u, 2293513541u, 2309169105u, 2324719241u, 2340166051u,
    2355511566u, 2370757755u, 2385906521u, 2400959708u, 2415919103u, 2430786438u,
    2445563392u, 2460251592u, 2474852620u, 2489368009u, 2503799249u, 2518147786u,
    2532415027u, 2546602337u, 2560711045u, 2574742443u, 2588697789u, 2602578306u,
    2616385184u, 2630119584u, 2643782635u, 2657375437u, 2670899063u, 2684354559u,
    2697742945u, 2711065213u, 2724322335u, 2737515256u, 2750644901u, 2763712171u,
    2776717947u, 2789663090u, 2802548438u, 2815374814u, 2828143019u, 2840853838u,
    2853508038u, 2866106369u, 2878649564u, 2891138341u, 2903573402u, 2915955434u,
    2928285110u, 2940563089u, 2952790015u, 2964966521u, 2977093224u, 2989170731u,
    3001199635u, 3013180520u, 3025113955u, 3037000499u, 3048840702u, 3060635101u,
    3072384223u, 3084088587u, 3095748698u, 3107365057u, 3118938151u, 3130468461u,
    3141956457u, 3153402603u, 3164807351u, 3176171148u, 3187494432u, 3198777634u,
    3210021175u, 3221225471u, 3232390931u, 3243517955u, 3254606938u, 3265658267u,
    3276672322u, 3287649480u, 3298590107u, 3309494567u, 3320363216u, 3331196403u,
    3341994475u, 3352757770u, 3363486623u, 3374181361u, 3384842308u, 3395469782u,
    3406064098u, 3416625562u, 3427154479u, 3437651148u, 3448115864u, 3458548916u,
    3468950591u, 3479321169u, 3489660927u, 3499970140u, 3510249076u, 3520498000u,
    3530717174u, 3540906855u, 3551067298u, 3561198751u, 3571301463u, 3581375676u,
    3591421631u, 3601439563u, 3611429705u, 3621392289u, 3631327540u, 3641235683u,
    3651116938u, 3660971522u, 3670799651u, 3680601537u, 3690377388u, 3700127412u,
    3709851811u, 3719550786u, 3729224537u, 3738873258u, 3748497143u, 3758096383u,
    3767671167u, 3777221679u, 3786748105u, 3796250624u, 3805729417u, 3815184660u,
    3824616528u, 3834025193u, 3843410826u, 3852773594u, 3862113665u, 3871431203u,
    3880726369u, 3889999324u, 3899250228u, 3908479235u, 3917686502u, 3926872180u,
    3936036422u, 3945179376u, 3954301190u, 3963402010u, 3972481981u, 3981541245u,
    3990579943u, 3999598214u, 4008596196u, 4017574027u, 4026531839u, 4035469768u,
    4044387944u, 4053286498u, 4062165559u, 4071025255u, 4079865711u, 4088687052u,
    4097489403u, 4106272884u, 4115037618u, 4123783722u, 4132511317u, 4141220518u,
    4149911441u, 4158584202u, 4167238913u, 4175875687u, 4184494635u, 4193095866u,
    4201679490u, 4210245614u, 4218794345u, 4227325788u, 4235840048u, 4244337228u,
    4252817431u, 4261280757u, 4269727308u, 4278157183u, 4286570479u, 4294967295u,
};
#endif

uint32_t et_isqrt_u64(uint64_t x)
{
#if ET_ISQRT_NEWTON
    uint64_t xn;
    uint64_t r;
    uint64_t y;
    int z;
    if (x < 2) {
        return (uint32_t)x;
    }
    z = et_clz_u64(x) & ~1;
    xn = x << z; /* in [2^62, 2^64): floor(sqrt(x)) = floor(sqrt(xn)) >> (z / 2) */
    r = et_isqrt_seed[(xn >> 56) - 64u];
    for (;;) {
        y = (r + xn / r) >> 1;
        if (y >= r) {
            return (uint32_t)(r >> (z / 2));
        }
        r = y;
    }
#else
    int z;
    uint64_t xn;
    uint32_t hi;
    uint32_t s;
    uint64_t num;
    uint64_t t;
    uint32_t r;
    if (x <= UINT32_MAX) {
        return et_isqrt_u32((uint32_t)x);
    }
    z = et_clz_u64(x) & ~1;
    xn = x << z;
    hi = (uint32_t)(xn >> 32);
    s = et_isqrt_u32(hi);
    num = ((uint64_t)(hi - s * s) << 32) | (uint32_t)xn;
    t = ((uint64_t)s << 16) + (uint32_t)(num >> 17) / s;
    r = t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
    if ((uint64_t)r * r > xn) {
        r -= 1;
    }
    return r >> (z / 2);
#endif
}

/*
 * floor(sqrt(h)) for h in [2^14, 2^16), without a loop or a division: with t = floor(h / 2^8) (64..255)
 * the root lies in [floor(sqrt(2^8 t)), floor(sqrt(2^8 (t + 1) - 1))], an interval narrower than
 * 2^4 (sqrt(t + 1) - sqrt(t)) < 1, so it is the table's floor(sqrt(2^8 t)) or one more: one compare
 * of the square decides. tests/test_fixed_paths.py checks every h on every path.
 */
static const uint8_t et_isqrt_seed16[192] = {
    128u, 128u, 129u, 130u, 131u, 132u, 133u, 134u, 135u, 136u, 137u, 138u, 139u, 140u, 141u, 142u,
    143u, 144u, 144u, 145u, 146u, 147u, 148u, 149u, 150u, 150u, 151u, 152u, 153u, 154u, 155u, 155u,
    156u, 157u, 158u, 159u, 160u, 160u, 161u, 162u, 163u, 163u, 164u, 165u, 166u, 167u, 167u, 168u,
    169u, 170u, 170u, 171u, 172u, 173u, 173u, 174u, 175u, 176u, 176u, 177u, 178u, 178u, 179u, 180u,
    181u, 181u, 182u, 183u, 183u, 184u, 185u, 185u, 186u, 187u, 187u, 188u, 189u, 189u, 190u, 191u,
    192u, 192u, 193u, 193u, 194u, 195u, 195u, 196u, 197u, 197u, 198u, 199u, 199u, 200u, 201u, 201u,
    202u, 203u, 203u, 204u, 204u, 205u, 206u, 206u, 207u, 208u, 208u, 209u, 209u, 210u, 211u, 211u,
    212u, 212u, 213u, 214u, 214u, 215u, 215u, 216u, 217u, 217u, 218u, 218u, 219u, 219u, 220u, 221u,
    221u, 222u, 222u, 223u, 224u, 224u, 225u, 225u, 226u, 226u, 227u, 227u, 228u, 229u, 229u, 230u,
    230u, 231u, 231u, 232u, 232u, 233u, 234u, 234u, 235u, 235u, 236u, 236u, 237u, 237u, 238u, 238u,
    239u, 240u, 240u, 241u, 241u, 242u, 242u, 243u, 243u, 244u, 244u, 245u, 245u, 246u, 246u, 247u,
    247u, 248u, 248u, 249u, 249u, 250u, 250u, 251u, 251u, 252u, 252u, 253u, 253u, 254u, 254u, 255u,
};

static uint32_t et_isqrt16(uint32_t h)
{
    uint32_t s = et_isqrt_seed16[(h >> 8) - 64u];
    return (s + 1u) * (s + 1u) <= h ? s + 1u : s;
}

/*
 * Scaled by an even 2^z: xn = x 2^z, with floor(sqrt(x)) = floor(floor(sqrt(xn)) / 2^(z/2)) (nested
 * floors). x < 2^16: xn in [2^14, 2^16) and et_isqrt16. Larger x: the split step of et_isqrt_u64 one
 * size down: xn in [2^30, 2^32), h = floor(xn / 2^16), s = floor(sqrt(h)) in [2^7, 2^8) (et_isqrt16),
 * sqrt(xn) = s 2^8 + d with 0 <= d < 2^8 and num = xn - s^2 2^16 = d (s 2^9 + d)
 * < 2^25, so r = s 2^8 + floor(floor(num / 2^9) / s) is floor(sqrt(xn)) or one more
 * (d^2 / (s 2^9) < 2^16 / 2^16), clamped to 2^16 - 1 first so that r^2 fits in 32 bits.
 */
uint32_t et_isqrt_u32(uint32_t x)
{
    int z;
    uint32_t xn;
    uint32_t h;
    uint32_t s;
    uint32_t r;
    if (x < 2u) {
        return x;
    }
    z = et_clz_u32(x) & ~1;
    if (z >= 16) {
        return et_isqrt16(x << (z - 16)) >> ((z - 16) / 2);
    }
    xn = x << z;
    h = xn >> 16;
    s = et_isqrt16(h);
    r = (s << 8) + ((((h - s * s) << 16) | (xn & 0xFFFFu)) >> 9) / s;
    r = r > 0xFFFFu ? 0xFFFFu : r;
    if (r * r > xn) {
        r -= 1;
    }
    return r >> (z / 2);
}

et_status_t et_div_trunc_s64(int64_t num, int64_t den, int64_t *quot)
{
    if (quot == NULL || den == 0) {
        return ET_ERR_ARG;
    }
    if (num == INT64_MIN && den == -1) {
        return ET_ERR_RANGE;
    }
    *quot = num / den;
    return ET_OK;
}

et_status_t et_div_round_s64(int64_t num, int64_t den, int64_t *quot)
{
    if (quot == NULL || den == 0) {
        return ET_ERR_ARG;
    }
    if (num == INT64_MIN && den == -1) {
        return ET_ERR_RANGE;
    }
    *quot = et_div_round_s64_inline(num, den);
    return ET_OK;
}

/*
 * Leading zeros. gcc and clang give an instruction (x86 BSR/LZCNT, Arm CLZ); Armv6-M (Cortex-M0+)
 * has none and the builtin would be a libgcc call, so there (and for other compilers) a binary
 * search: five steps, each halving the window that holds the top bit. -DET_CLZ_PORTABLE (tests)
 * builds the search on any host.
 */
#if defined(__GNUC__) && __SIZEOF_INT__ == 4 && (!defined(__arm__) || defined(__ARM_FEATURE_CLZ)) && \
    !defined(ET_CLZ_PORTABLE)
#define ET_CLZ_BUILTIN 1
#else
#define ET_CLZ_BUILTIN 0
#endif

int et_clz_u32(uint32_t x)
{
#if ET_CLZ_BUILTIN
    return x == 0 ? 32 : __builtin_clz(x);
#else
    int n = 0;
    if (x == 0) {
        return 32;
    }
    if (x < UINT32_C(0x10000)) {
        n += 16;
        x <<= 16;
    }
    if (x < UINT32_C(0x1000000)) {
        n += 8;
        x <<= 8;
    }
    if (x < UINT32_C(0x10000000)) {
        n += 4;
        x <<= 4;
    }
    if (x < UINT32_C(0x40000000)) {
        n += 2;
        x <<= 2;
    }
    return x < UINT32_C(0x80000000) ? n + 1 : n;
#endif
}

int et_clz_u64(uint64_t x)
{
#if ET_CLZ_BUILTIN && __SIZEOF_LONG_LONG__ == 8 && (defined(__x86_64__) || defined(__aarch64__))
    return x == 0 ? 64 : __builtin_clzll(x);
#else
    uint32_t hi = (uint32_t)(x >> 32);
    return hi != 0 ? et_clz_u32(hi) : 32 + et_clz_u32((uint32_t)x);
#endif
}

int et_norm_shift_u64(uint64_t mag, int bits)
{
    int width;
    if (mag == 0) {
        return 0;
    }
    if (bits < 1) {
        bits = 1;
    } else if (bits > 63) {
        bits = 63;
    }
    width = 64 - et_clz_u64(mag); /* mag in [2^(width-1), 2^width) */
    return width - bits;
}

/* ---- seeded integer PRNG -------------------------------------------------- */

et_status_t et_prng_seed(et_prng_t *prng, uint32_t seed)
{
    uint32_t h = seed;
    if (prng == NULL) {
        return ET_ERR_ARG;
    }
    h ^= h >> 16;
    h *= UINT32_C(0x85EBCA6B);
    h ^= h >> 13;
    h *= UINT32_C(0xC2B2AE35);
    h ^= h >> 16;
    prng->state = h != 0 ? h : UINT32_C(0x9E3779B9);
    return ET_OK;
}

et_status_t et_prng_next_u32(et_prng_t *prng, uint32_t *out)
{
    uint32_t s;
    if (prng == NULL || out == NULL || prng->state == 0) {
        return ET_ERR_ARG;
    }
    s = et_xorshift32_inline(prng->state);
    prng->state = s;
    *out = s;
    return ET_OK;
}

/* ---- block floating point ------------------------------------------------- */

/* Exponent arguments are kept to the int16 range, so sums of two never overflow an int. */
#define ET_EXP_OK(e) ((e) >= INT16_MIN && (e) <= INT16_MAX)

static uint64_t et_abs_u64(int64_t v)
{
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

static int16_t et_sat_s16(int64_t v)
{
    return (int16_t)et_saturate_s64(v, INT16_MIN, INT16_MAX);
}

/* Shared tail of the normalise functions once the largest magnitude is known. */
static et_status_t et_bfp16_pick_exp(uint64_t max_mag, int src_exp, int *shift, int *exp)
{
    int32_t e;
    *shift = et_norm_shift_u64(max_mag, 15);
    e = max_mag == 0 ? 0 : (int32_t)src_exp + *shift;
    if (e < INT16_MIN || e > INT16_MAX) {
        return ET_ERR_RANGE;
    }
    *exp = (int)e;
    return ET_OK;
}

et_status_t et_bfp16_normalize_s32(et_bfp16_t *dst, const int32_t *src, int src_exp)
{
    uint64_t max_mag = 0;
    uint16_t i;
    int shift;
    int exp;
    et_status_t st;
    if (dst == NULL || dst->mant == NULL || src == NULL || dst->len == 0 || !ET_EXP_OK(src_exp)) {
        return ET_ERR_ARG;
    }
    for (i = 0; i < dst->len; i++) {
        uint64_t m = et_abs_u64(src[i]);
        max_mag = m > max_mag ? m : max_mag;
    }
    st = et_bfp16_pick_exp(max_mag, src_exp, &shift, &exp);
    if (st != ET_OK) {
        return st;
    }
    for (i = 0; i < dst->len; i++) {
        dst->mant[i] = et_sat_s16(et_round_shift_s64(src[i], shift));
    }
    dst->exp = (int16_t)exp;
    return ET_OK;
}

et_status_t et_bfp16_normalize_s64(et_bfp16_t *dst, const int64_t *src, int src_exp)
{
    uint64_t max_mag = 0;
    uint16_t i;
    int shift;
    int exp;
    et_status_t st;
    if (dst == NULL || dst->mant == NULL || src == NULL || dst->len == 0 || !ET_EXP_OK(src_exp)) {
        return ET_ERR_ARG;
    }
    for (i = 0; i < dst->len; i++) {
        uint64_t m = et_abs_u64(src[i]);
        max_mag = m > max_mag ? m : max_mag;
    }
    st = et_bfp16_pick_exp(max_mag, src_exp, &shift, &exp);
    if (st != ET_OK) {
        return st;
    }
    for (i = 0; i < dst->len; i++) {
        dst->mant[i] = et_sat_s16(et_round_shift_s64(src[i], shift));
    }
    dst->exp = (int16_t)exp;
    return ET_OK;
}

et_status_t et_bfp16_renormalize(et_bfp16_t *v)
{
    uint64_t max_mag = 0;
    uint16_t i;
    int shift;
    int exp;
    et_status_t st;
    if (v == NULL || v->mant == NULL || v->len == 0) {
        return ET_ERR_ARG;
    }
    for (i = 0; i < v->len; i++) {
        uint64_t m = et_abs_u64(v->mant[i]);
        max_mag = m > max_mag ? m : max_mag;
    }
    st = et_bfp16_pick_exp(max_mag, v->exp, &shift, &exp);
    if (st != ET_OK) {
        return st;
    }
    for (i = 0; i < v->len; i++) {
        v->mant[i] = et_sat_s16(et_round_shift_s64(v->mant[i], shift));
    }
    v->exp = (int16_t)exp;
    return ET_OK;
}

et_status_t et_bfp16_dot(const et_bfp16_t *a, const et_bfp16_t *b, int64_t *acc, int *exp)
{
    int64_t sum = 0;
    uint16_t i;
    if (a == NULL || b == NULL || acc == NULL || exp == NULL || a->mant == NULL ||
        b->mant == NULL || a->len != b->len) {
        return ET_ERR_ARG;
    }
    for (i = 0; i < a->len; i++) {
        sum += (int32_t)a->mant[i] * (int32_t)b->mant[i];
    }
    *acc = sum;
    *exp = (int)a->exp + (int)b->exp;
    return ET_OK;
}

et_status_t et_bfp16_dot_s32(const et_bfp16_t *a, const int32_t *x, int x_exp, int64_t *acc, int *exp)
{
    int64_t sum = 0;
    uint16_t i;
    if (a == NULL || x == NULL || acc == NULL || exp == NULL || a->mant == NULL || !ET_EXP_OK(x_exp)) {
        return ET_ERR_ARG;
    }
    for (i = 0; i < a->len; i++) {
        sum += (int64_t)a->mant[i] * (int64_t)x[i];
    }
    *acc = sum;
    *exp = (int)a->exp + x_exp;
    return ET_OK;
}

static int64_t et_add_sat_s64(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b) {
        return INT64_MAX;
    }
    if (b < 0 && a < INT64_MIN - b) {
        return INT64_MIN;
    }
    return a + b;
}

et_status_t et_bfp16_axpy_s32(int32_t *y, int y_exp, int32_t alpha, int alpha_exp, const et_bfp16_t *x)
{
    uint16_t i;
    int shift;
    if (y == NULL || x == NULL || x->mant == NULL || !ET_EXP_OK(y_exp) || !ET_EXP_OK(alpha_exp)) {
        return ET_ERR_ARG;
    }
    shift = y_exp - alpha_exp - (int)x->exp;
    for (i = 0; i < x->len; i++) {
        int64_t term = et_round_shift_s64((int64_t)alpha * x->mant[i], shift);
        y[i] = (int32_t)et_saturate_s64(et_add_sat_s64(y[i], term), INT32_MIN, INT32_MAX);
    }
    return ET_OK;
}

et_status_t et_bfp16_axpy_s64(int64_t *y, int y_exp, int32_t alpha, int alpha_exp, const et_bfp16_t *x)
{
    uint16_t i;
    int shift;
    if (y == NULL || x == NULL || x->mant == NULL || !ET_EXP_OK(y_exp) || !ET_EXP_OK(alpha_exp)) {
        return ET_ERR_ARG;
    }
    shift = y_exp - alpha_exp - (int)x->exp;
    for (i = 0; i < x->len; i++) {
        y[i] = et_add_sat_s64(y[i], et_round_shift_s64((int64_t)alpha * x->mant[i], shift));
    }
    return ET_OK;
}
