/*
 * edgetrain — low-rank gradient approximation (et_lga.h), integer only.
 *
 * A state is a 64-byte header followed by its arrays, each padded to 8
 * bytes: A int16 [n][r], B int16 [r][m], then (momentum, Adam) the int32
 * first moments of A and B, then (Adam) the uint64 second moments of A and
 * B. Every rescale is the rounding rule (et_round_shift_s64), every
 * quotient et_div_round_s64, every square root et_isqrt_u64.
 * docs/lga.md derives the formats and the bounds.
 */
#include <string.h>

#include "edgetrain/et_fixed.h"
#include "edgetrain/et_lga.h"
#include "edgetrain/et_maxnorm.h"
#include "clip_internal.h"
#include "fixed_inline.h"

/* The header is the same 64 bytes on every target (the plan counts on it). */
typedef char et_lga_header_size_check[(sizeof(et_lga_state_t) == ET_LGA_HEADER_BYTES) ? 1 : -1];

#define LGA_Q30 (INT64_C(1) << 30)
#define LGA_A8(n) (((n) + UINT32_C(7)) & ~UINT32_C(7))
#define LGA_CORRECT_SHIFT 13 /* A u at 2^-25 into the pre-activation LSB 2^-12 */
#define LGA_MERGE_SHIFT 23   /* A B at 2^-30 into the weight LSB 2^-7 (minus alpha_shift) */

typedef struct {
    int16_t *a;
    int16_t *b;
    int32_t *mu_a;
    int32_t *mu_b;
    uint64_t *nu_a;
    uint64_t *nu_b;
} et_lga_views_t;

typedef struct {
    int64_t *ga;
    int64_t *gb;
    int64_t *v;
    int16_t *u;
} et_lga_scratch_t;

static uint32_t et_lga_bytes(uint16_t n, uint16_t m, uint8_t rank, uint8_t optimizer)
{
    uint32_t nr = (uint32_t)n * rank;
    uint32_t rm = (uint32_t)rank * m;
    uint32_t total = ET_LGA_HEADER_BYTES + LGA_A8(2 * nr) + LGA_A8(2 * rm);
    if (optimizer != ET_LGA_SGD) {
        total += LGA_A8(4 * nr) + LGA_A8(4 * rm);
    }
    if (optimizer == ET_LGA_ADAM) {
        total += LGA_A8(8 * nr) + LGA_A8(8 * rm);
    }
    return total;
}

static void et_lga_views(const et_lga_state_t *st, et_lga_views_t *v)
{
    uint8_t *p = (uint8_t *)(uintptr_t)st + ET_LGA_HEADER_BYTES;
    uint32_t nr = (uint32_t)st->n * st->rank;
    uint32_t rm = (uint32_t)st->rank * st->m;
    memset(v, 0, sizeof(*v));
    v->a = (int16_t *)(void *)p;
    p += LGA_A8(2 * nr);
    v->b = (int16_t *)(void *)p;
    p += LGA_A8(2 * rm);
    if (st->optimizer != ET_LGA_SGD) {
        v->mu_a = (int32_t *)(void *)p;
        p += LGA_A8(4 * nr);
        v->mu_b = (int32_t *)(void *)p;
        p += LGA_A8(4 * rm);
    }
    if (st->optimizer == ET_LGA_ADAM) {
        v->nu_a = (uint64_t *)(void *)p;
        p += LGA_A8(8 * nr);
        v->nu_b = (uint64_t *)(void *)p;
    }
}

static uint32_t et_lga_scratch_bytes(uint16_t n, uint16_t m, uint8_t rank)
{
    return LGA_A8(8 * (uint32_t)n * rank) + LGA_A8(8 * (uint32_t)rank * m) + LGA_A8(8 * (uint32_t)rank) +
           LGA_A8(2 * (uint32_t)rank);
}

static void et_lga_scratch(const et_lga_state_t *st, void *scratch, et_lga_scratch_t *s)
{
    uint8_t *p = (uint8_t *)scratch;
    s->ga = (int64_t *)(void *)p;
    p += LGA_A8(8 * (uint32_t)st->n * st->rank);
    s->gb = (int64_t *)(void *)p;
    p += LGA_A8(8 * (uint32_t)st->rank * st->m);
    s->v = (int64_t *)(void *)p;
    p += LGA_A8(8 * (uint32_t)st->rank);
    s->u = (int16_t *)(void *)p;
}

static int et_lga_dims_ok(uint16_t n, uint16_t m, uint8_t rank, uint8_t optimizer)
{
    return n > 0 && m > 0 && rank >= 1 && rank <= ET_LGA_MAX_RANK && optimizer <= ET_LGA_ADAM;
}

static int et_lga_state_ok(const et_lga_state_t *st)
{
    return st != NULL && et_lga_dims_ok(st->n, st->m, st->rank, st->optimizer);
}

static int et_lga_matches(const et_lga_state_t *st, const et_lga_config_t *cfg)
{
    return et_lga_state_ok(st) && et_lga_config_check(cfg) == ET_OK && cfg->rank == st->rank &&
           cfg->optimizer == st->optimizer;
}

et_status_t et_lga_config_default(et_lga_config_t *config)
{
    if (config == NULL) {
        return ET_ERR_ARG;
    }
    memset(config, 0, sizeof(*config));
    config->optimizer = ET_LGA_ADAM;
    config->rank = 4;
    config->restart = ET_LGA_RESTART_REDRAW_B;
    config->merge_every = 100;
    config->lr = 1610613; /* 0.003 * 2^29 */
    config->lr_exp = -29;
    config->beta1_q30 = 966367642;  /* 0.9 */
    config->beta2_q30 = 1072668082; /* 0.999 */
    config->eps = 16;               /* 2^-20 */
    return ET_OK;
}

et_status_t et_lga_config_check(const et_lga_config_t *c)
{
    if (c == NULL || c->optimizer > ET_LGA_ADAM || c->rank < 1 || c->rank > ET_LGA_MAX_RANK ||
        c->restart > ET_LGA_RESTART_REDRAW_B || c->reserved != 0 || c->merge_every < 1 || c->merge_every > 65535 ||
        c->lr < 1 || c->lr >= (UINT32_C(1) << 31) || c->lr_exp < ET_LGA_LR_EXP_MIN || c->lr_exp > ET_LGA_LR_EXP_MAX ||
        c->beta1_q30 > ET_LGA_BETA_MAX || c->beta2_q30 > ET_LGA_BETA_MAX || c->eps < 1 || c->eps > 65535) {
        return ET_ERR_ARG;
    }
    return ET_OK;
}

et_status_t et_lga_state_get_size(uint16_t n, uint16_t m, uint8_t rank, uint8_t optimizer, uint32_t *bytes)
{
    if (bytes == NULL || !et_lga_dims_ok(n, m, rank, optimizer)) {
        return ET_ERR_ARG;
    }
    *bytes = et_lga_bytes(n, m, rank, optimizer);
    return ET_OK;
}

et_status_t et_lga_grad_get_buffer_size(uint16_t n, uint16_t m, uint8_t rank, uint32_t *bytes)
{
    if (bytes == NULL || !et_lga_dims_ok(n, m, rank, ET_LGA_SGD)) {
        return ET_ERR_ARG;
    }
    *bytes = et_lga_scratch_bytes(n, m, rank);
    return ET_OK;
}

/* B[k][j] = +s or -s by the top bit of the next PRNG word, row-major; s about 2^15 / sqrt(m). */
static void et_lga_draw_b(et_lga_state_t *st, et_prng_t *prng)
{
    et_lga_views_t v;
    uint32_t k;
    int64_t s = 0;
    et_lga_views(st, &v);
    (void)et_div_round_s64(INT64_C(1) << 15, (int64_t)et_isqrt_u64(st->m), &s);
    s = s > INT16_MAX ? INT16_MAX : s;
    for (k = 0; k < (uint32_t)st->rank * st->m; k++) {
        uint32_t word = 0;
        (void)et_prng_next_u32(prng, &word);
        v.b[k] = (int16_t)((word >> 31) ? -s : s);
    }
}

/* A = 0, moments, t, powers and trackers reset, samples = 0. */
static void et_lga_clear(et_lga_state_t *st)
{
    et_lga_views_t v;
    uint32_t nr = (uint32_t)st->n * st->rank;
    uint32_t rm = (uint32_t)st->rank * st->m;
    et_lga_views(st, &v);
    memset(v.a, 0, 2 * (size_t)nr);
    if (v.mu_a != NULL) {
        memset(v.mu_a, 0, 4 * (size_t)nr);
        memset(v.mu_b, 0, 4 * (size_t)rm);
    }
    if (v.nu_a != NULL) {
        memset(v.nu_a, 0, 8 * (size_t)nr);
        memset(v.nu_b, 0, 8 * (size_t)rm);
    }
    st->steps = 0;
    st->samples = 0;
    st->beta1_pow = (uint32_t)LGA_Q30;
    st->beta2_pow = (uint32_t)LGA_Q30;
    (void)et_maxnorm_init(&st->norm_a);
    (void)et_maxnorm_init(&st->norm_b);
}

et_status_t et_lga_state_init(void *mem, uint32_t bytes, uint16_t n, uint16_t m, const et_lga_config_t *config,
                              et_prng_t *prng, et_lga_state_t **state)
{
    et_lga_state_t *st;
    if (mem == NULL || state == NULL || prng == NULL || prng->state == 0 || ((uintptr_t)mem & 7u) != 0 ||
        et_lga_config_check(config) != ET_OK || !et_lga_dims_ok(n, m, config->rank, config->optimizer)) {
        return ET_ERR_ARG;
    }
    if (bytes < et_lga_bytes(n, m, config->rank, config->optimizer)) {
        return ET_ERR_NOMEM;
    }
    st = (et_lga_state_t *)mem;
    memset(st, 0, ET_LGA_HEADER_BYTES);
    st->n = n;
    st->m = m;
    st->rank = config->rank;
    st->optimizer = config->optimizer;
    et_lga_clear(st);
    et_lga_draw_b(st, prng);
    *state = st;
    return ET_OK;
}

static void et_lga_project_raw(const et_lga_state_t *st, const int16_t *x, int32_t x_exp, int16_t *u)
{
    et_lga_views_t v;
    uint32_t k;
    uint32_t j;
    et_lga_views(st, &v);
    for (k = 0; k < st->rank; k++) {
        const int16_t *b = v.b + k * st->m;
        int64_t acc = 0;
        for (j = 0; j < st->m; j++) {
            acc += (int64_t)b[j] * x[j];
        }
        u[k] = (int16_t)et_saturate_s64_inline(et_round_shift_s64_inline(acc, 5 - x_exp), INT16_MIN, INT16_MAX);
    }
}

et_status_t et_lga_project(const et_lga_state_t *state, const int16_t *x, int32_t x_exp, int16_t *u)
{
    if (!et_lga_state_ok(state) || x == NULL || u == NULL || x_exp < -16 || x_exp > 0) {
        return ET_ERR_ARG;
    }
    et_lga_project_raw(state, x, x_exp, u);
    return ET_OK;
}

et_status_t et_lga_correct(const et_lga_state_t *state, const int16_t *u, int16_t *z)
{
    uint32_t pre = 0;
    return et_lga_correct_n(state, u, z, &pre);
}

et_status_t et_lga_correct_n(const et_lga_state_t *state, const int16_t *u, int16_t *z, uint32_t *pre)
{
    et_lga_views_t v;
    uint32_t o;
    uint32_t k;
    uint32_t clips = 0;
    if (!et_lga_state_ok(state) || u == NULL || z == NULL) {
        return ET_ERR_ARG;
    }
    et_lga_views(state, &v);
    for (o = 0; o < state->n; o++) {
        const int16_t *a = v.a + o * state->rank;
        int64_t acc = 0;
        for (k = 0; k < state->rank; k++) {
            acc += (int64_t)a[k] * u[k];
        }
        acc = (int64_t)z[o] + et_round_shift_s64_inline(acc, LGA_CORRECT_SHIFT);
        clips += (uint32_t)(acc < INT16_MIN) | (uint32_t)(acc > INT16_MAX);
        z[o] = (int16_t)et_saturate_s64_inline(acc, INT16_MIN, INT16_MAX);
    }
    *pre += clips;
    return ET_OK;
}

et_status_t et_lga_grad_zero(const et_lga_state_t *state, void *scratch, uint32_t scratch_bytes)
{
    et_lga_scratch_t s;
    if (!et_lga_state_ok(state) || scratch == NULL || ((uintptr_t)scratch & 7u) != 0) {
        return ET_ERR_ARG;
    }
    if (scratch_bytes < et_lga_scratch_bytes(state->n, state->m, state->rank)) {
        return ET_ERR_NOMEM;
    }
    et_lga_scratch(state, scratch, &s);
    memset(s.ga, 0, 8 * (size_t)state->n * state->rank);
    memset(s.gb, 0, 8 * (size_t)state->rank * state->m);
    return ET_OK;
}

et_status_t et_lga_grad_add(const et_lga_state_t *state, void *scratch, uint32_t scratch_bytes, const int8_t *delta,
                            const int16_t *x, int32_t x_exp)
{
    et_lga_views_t v;
    et_lga_scratch_t s;
    uint32_t r;
    uint32_t o;
    uint32_t k;
    uint32_t j;
    if (!et_lga_state_ok(state) || scratch == NULL || ((uintptr_t)scratch & 7u) != 0 || delta == NULL || x == NULL ||
        x_exp < -16 || x_exp > 0) {
        return ET_ERR_ARG;
    }
    if (scratch_bytes < et_lga_scratch_bytes(state->n, state->m, state->rank)) {
        return ET_ERR_NOMEM;
    }
    r = state->rank;
    et_lga_views(state, &v);
    et_lga_scratch(state, scratch, &s);
    et_lga_project_raw(state, x, x_exp, s.u);
    for (k = 0; k < r; k++) {
        s.v[k] = 0;
    }
    for (o = 0; o < state->n; o++) {
        int64_t d = delta[o];
        if (d == 0) {
            continue;
        }
        for (k = 0; k < r; k++) {
            s.ga[o * r + k] += d * s.u[k];
            s.v[k] += d * v.a[o * r + k];
        }
    }
    for (k = 0; k < r; k++) {
        int64_t vk = s.v[k];
        int64_t *gb = s.gb + k * state->m;
        if (vk == 0) {
            continue;
        }
        for (j = 0; j < state->m; j++) {
            gb[j] += vk * x[j];
        }
    }
    return ET_OK;
}

/* round_shift(x * b, 30) for 0 <= x < 2^62, 0 <= b < 2^30, exactly (split at bit 32). */
static uint64_t et_lga_mul_q30(uint64_t x, uint32_t b)
{
    uint64_t hi = x >> 32;
    uint64_t lo = x & UINT64_C(0xFFFFFFFF);
    return hi * b * 4u + (uint64_t)et_round_shift_s64_inline((int64_t)(lo * b), 30);
}

/* The gradient sums g (n values at 2^g_exp) rescaled in place to int32 at LSB 2^-24, saturated. */
static void et_lga_to_g(int64_t *g, uint32_t n, int32_t g_exp)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        g[i] = et_saturate_s64_inline(et_round_shift_s64_inline(g[i], ET_LGA_G_EXP - g_exp), -INT32_MAX, INT32_MAX);
    }
}

/* mu = round_shift(b1 mu + (2^30 - b1) g, 30). */
static void et_lga_first_moment(int32_t *mu, const int64_t *g, uint32_t n, uint32_t b1)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        mu[i] = (int32_t)et_round_shift_s64_inline((int64_t)b1 * mu[i] + (LGA_Q30 - b1) * g[i], 30);
    }
}

/* Max-normed step on theta (n values) along dir (|dir| < 2^31, LSB 2^-24); an all-zero dir takes none. */
static et_status_t et_lga_normed_step(int16_t *theta, const int64_t *dir, uint32_t n, et_maxnorm_t *mn,
                                      const et_lga_config_t *c)
{
    uint64_t dmax = 0;
    et_ufloat_t div;
    uint32_t i;
    et_status_t st;
    for (i = 0; i < n; i++) {
        uint64_t a = (uint64_t)(dir[i] < 0 ? -dir[i] : dir[i]);
        dmax = a > dmax ? a : dmax;
    }
    if (dmax == 0) {
        return ET_OK;
    }
    if ((st = et_maxnorm_update(mn, dmax, ET_LGA_G_EXP, &div)) != ET_OK) {
        return st;
    }
    for (i = 0; i < n; i++) {
        int64_t d = 0;
        if (dir[i] == 0) {
            continue;
        }
        /* the result in units of 2^-12 of (value * 8): units of the factor LSB 2^-15 */
        if ((st = et_maxnorm_scale(dir[i], ET_LGA_G_EXP, c->lr, c->lr_exp + 3, div, ET_FMT_BIAS, &d)) != ET_OK) {
            return st;
        }
        theta[i] = (int16_t)et_saturate_s64_inline((int64_t)theta[i] - d, INT16_MIN, INT16_MAX);
    }
    return ET_OK;
}

/* Adam on theta (n values): moments from g, then theta -= alpha mu / (isqrt(nu) + eps) (alpha * 2^alpha_exp). */
static void et_lga_adam(int16_t *theta, int32_t *mu, uint64_t *nu, const int64_t *g, uint32_t n,
                        const et_lga_config_t *c, uint32_t alpha, int32_t alpha_exp)
{
    int s = ET_LGA_FACTOR_EXP - alpha_exp; /* 0..31 (the config ranges guarantee it) */
    uint32_t i;
    et_lga_first_moment(mu, g, n, c->beta1_q30);
    for (i = 0; i < n; i++) {
        uint64_t g2 = (uint64_t)(g[i] * g[i]);
        int64_t den;
        int64_t q = 0;
        nu[i] = et_lga_mul_q30(nu[i], c->beta2_q30) + et_lga_mul_q30(g2, (uint32_t)(LGA_Q30 - c->beta2_q30));
        den = ((int64_t)et_isqrt_u64(nu[i]) + (int64_t)c->eps) << s;
        (void)et_div_round_s64((int64_t)alpha * mu[i], den, &q);
        theta[i] = (int16_t)et_saturate_s64_inline((int64_t)theta[i] - q, INT16_MIN, INT16_MAX);
    }
}

et_status_t et_lga_step(et_lga_state_t *state, const et_lga_config_t *config, void *scratch, uint32_t scratch_bytes,
                        int32_t x_exp)
{
    et_lga_views_t v;
    et_lga_scratch_t s;
    uint32_t nr;
    uint32_t rm;
    et_status_t st = ET_OK;
    if (!et_lga_matches(state, config) || scratch == NULL || ((uintptr_t)scratch & 7u) != 0 || x_exp < -16 ||
        x_exp > 0) {
        return ET_ERR_ARG;
    }
    if (scratch_bytes < et_lga_scratch_bytes(state->n, state->m, state->rank)) {
        return ET_ERR_NOMEM;
    }
    nr = (uint32_t)state->n * state->rank;
    rm = (uint32_t)state->rank * state->m;
    et_lga_views(state, &v);
    et_lga_scratch(state, scratch, &s);
    et_lga_to_g(s.ga, nr, -17);
    et_lga_to_g(s.gb, rm, -22 + x_exp);
    state->steps = state->steps == UINT32_MAX ? UINT32_MAX : state->steps + 1;
    if (config->optimizer == ET_LGA_SGD) {
        if ((st = et_lga_normed_step(v.a, s.ga, nr, &state->norm_a, config)) == ET_OK) {
            st = et_lga_normed_step(v.b, s.gb, rm, &state->norm_b, config);
        }
    } else if (config->optimizer == ET_LGA_MOMENTUM) {
        uint32_t i;
        et_lga_first_moment(v.mu_a, s.ga, nr, config->beta1_q30);
        et_lga_first_moment(v.mu_b, s.gb, rm, config->beta1_q30);
        for (i = 0; i < nr; i++) {
            s.ga[i] = v.mu_a[i];
        }
        for (i = 0; i < rm; i++) {
            s.gb[i] = v.mu_b[i];
        }
        if ((st = et_lga_normed_step(v.a, s.ga, nr, &state->norm_a, config)) == ET_OK) {
            st = et_lga_normed_step(v.b, s.gb, rm, &state->norm_b, config);
        }
    } else {
        /* alpha_t = lr sqrt(1 - beta2^t) / (1 - beta1^t), at most 30 significant bits */
        int64_t c1;
        int64_t c2;
        int64_t q = 0;
        int k = 0;
        uint32_t alpha;
        state->beta1_pow = (uint32_t)et_round_shift_s64_inline((int64_t)state->beta1_pow * config->beta1_q30, 30);
        state->beta2_pow = (uint32_t)et_round_shift_s64_inline((int64_t)state->beta2_pow * config->beta2_q30, 30);
        c1 = LGA_Q30 - state->beta1_pow;
        c2 = LGA_Q30 - state->beta2_pow;
        (void)et_div_round_s64((int64_t)config->lr * et_isqrt_u64((uint64_t)c2 << 30), c1, &q);
        if (64 - et_clz_u64((uint64_t)q) > 30) {
            k = 64 - et_clz_u64((uint64_t)q) - 30;
        }
        alpha = (uint32_t)et_round_shift_s64_inline(q, k);
        et_lga_adam(v.a, v.mu_a, v.nu_a, s.ga, nr, config, alpha, config->lr_exp + k);
        et_lga_adam(v.b, v.mu_b, v.nu_b, s.gb, rm, config, alpha, config->lr_exp + k);
    }
    return st;
}

et_status_t et_lga_merge_row(const et_lga_state_t *state, uint16_t o, int32_t alpha_shift, const int8_t *w,
                             int8_t *out, uint8_t *changed)
{
    uint32_t clips = 0;
    return et_lga_merge_row_n(state, o, alpha_shift, w, out, changed, &clips);
}

et_status_t et_lga_merge_row_n(const et_lga_state_t *state, uint16_t o, int32_t alpha_shift, const int8_t *w,
                               int8_t *out, uint8_t *changed, uint32_t *weight)
{
    et_lga_views_t v;
    const int16_t *a;
    uint32_t j;
    uint32_t k;
    uint8_t any = 0;
    uint32_t clips = 0;
    if (!et_lga_state_ok(state) || w == NULL || out == NULL || o >= state->n || alpha_shift < 0 || alpha_shift > 15) {
        return ET_ERR_ARG;
    }
    et_lga_views(state, &v);
    a = v.a + (uint32_t)o * state->rank;
    for (j = 0; j < state->m; j++) {
        int64_t acc = 0;
        int8_t nw;
        for (k = 0; k < state->rank; k++) {
            acc += (int64_t)a[k] * v.b[k * state->m + j];
        }
        acc = (int64_t)w[j] + et_round_shift_s64_inline(acc, LGA_MERGE_SHIFT - alpha_shift);
        clips += (uint32_t)(acc < INT8_MIN) | (uint32_t)(acc > INT8_MAX);
        nw = (int8_t)et_saturate_s64_inline(acc, INT8_MIN, INT8_MAX);
        any |= (uint8_t)(nw != w[j]);
        out[j] = nw;
    }
    if (changed != NULL) {
        *changed = any;
    }
    *weight += clips;
    return ET_OK;
}

et_status_t et_lga_restart(et_lga_state_t *state, const et_lga_config_t *config, et_prng_t *prng)
{
    if (!et_lga_matches(state, config) || (config->restart == ET_LGA_RESTART_REDRAW_B && (prng == NULL || prng->state == 0))) {
        return ET_ERR_ARG;
    }
    et_lga_clear(state);
    state->merges = state->merges == UINT32_MAX ? UINT32_MAX : state->merges + 1;
    if (config->restart == ET_LGA_RESTART_REDRAW_B) {
        et_lga_draw_b(state, prng);
    }
    return ET_OK;
}

et_status_t et_lga_factors(const et_lga_state_t *state, const int16_t **a, const int16_t **b)
{
    et_lga_views_t v;
    if (!et_lga_state_ok(state) || a == NULL || b == NULL) {
        return ET_ERR_ARG;
    }
    et_lga_views(state, &v);
    *a = v.a;
    *b = v.b;
    return ET_OK;
}
