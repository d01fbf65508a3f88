/*
 * A digest of the conv and dense kernels (csrc/src/layers.c): forward with its clip counters,
 * input gradients at int8 and int16, the conv weight gradient, over layers that take every loop
 * (thin windows, wide rows, SAME and VALID, kernels 1 to 5, channel counts around the blocks),
 * every input format, with and without ReLU, several layer scales, random and extreme tensors and
 * sparse gradients. Prints one line per case (statuses and an FNV-1a hash of every output), so that
 * two builds of the core (e.g. with and without ET_NO_MULTIVERSION) can be compared byte for byte.
 * Usage: layers_digest [ROUNDS_PER_CASE]; `layers_digest isa` prints whether the forward kernels'
 * AVX-512 VNNI copy and the conv forward's AVX2 lanes copy are built and picked on this CPU
 * (csrc/src/hot_internal.h), and nothing else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgetrain/edgetrain.h"
#include "clip_internal.h"
#include "digest.h"
#include "hot_internal.h"

#define BUF (1 << 18)
static int8_t w[BUF];
static int16_t bias[4096];
static uint8_t x[BUF];
static int16_t outbuf[BUF];
static int8_t dz[BUF];
static int16_t dx[BUF];
static int32_t dw[BUF];

/* mode 0: uniform bytes; 1: extremes (clamps); 2: small values; dz: sparse with probability 3/4 */
static void fill(uint32_t *s, int mode, uint32_t nw, uint32_t nb, uint32_t nx, uint32_t nd)
{
    uint32_t i;
    for (i = 0; i < nw; i++) {
        uint32_t r = rnd(s);
        w[i] = (int8_t)(mode == 1   ? ((r & 1) ? 127 : -128)
                        : mode == 2 ? (int32_t)(r % 9) - 4
                                    : (int32_t)(r & 0xFF) - 128);
    }
    for (i = 0; i < nb; i++) {
        bias[i] = (int16_t)(mode == 1 ? ((rnd(s) & 1) ? 32767 : -32768) : (int32_t)(rnd(s) & 0xFFFF) - 32768);
    }
    for (i = 0; i < nx; i++) {
        uint32_t r = rnd(s);
        x[i] = (uint8_t)(mode == 1 ? ((r & 1) ? 0x7F : 0x80) : r);
    }
    for (i = 0; i < nd; i++) {
        uint32_t r = rnd(s);
        int32_t v = mode == 1 ? ((r & 1) ? 127 : -128) : (int32_t)((r >> 8) & 0xFF) - 128;
        dz[i] = (int8_t)(((r & 3) != 0 && mode != 1) ? 0 : v);
    }
}

typedef struct {
    int ih, iw, ic, oc, k, pad;
} conv_case_t;

static const conv_case_t CONV[] = {
    {28, 28, 1, 8, 3, ET_PAD_SAME},   /* thin: windows, rows backward */
    {14, 14, 8, 16, 3, ET_PAD_SAME},  /* m = 72: windows; rows backward */
    {12, 12, 16, 12, 3, ET_PAD_VALID}, /* m = 144: wide; blocks backward */
    {9, 7, 70, 5, 3, ET_PAD_SAME},    /* channels past a block of 64; 4 + 1 output channels */
    {6, 6, 3, 7, 5, ET_PAD_SAME},     /* k = 5 */
    {5, 5, 130, 6, 1, ET_PAD_VALID},  /* k = 1, m = 130 */
    {7, 9, 33, 3, 3, ET_PAD_SAME},    /* odd sizes, fewer than 4 output channels */
    {10, 11, 2, 24, 3, ET_PAD_VALID}, /* thin, 16 + 8 output channels per pixel on x86 hosts */
    {7, 6, 3, 24, 5, ET_PAD_SAME},    /* thin, k = 5: taps cut by SAME padding on both sides */
    {8, 8, 14, 24, 3, ET_PAD_SAME},   /* m * oc = 3024: windows, too many weights for the x86 thin path */
    {6, 7, 20, 130, 3, ET_PAD_SAME},  /* blocks backward, 130 output channels: three mask words on x86 */
    {48, 48, 3, 5, 3, ET_PAD_SAME},   /* blocks backward, 2,304 output pixels: too many masks, scans */
    {6, 7, 20, 32, 3, ET_PAD_SAME},   /* m = 180, 32 output channels: the VNNI lanes path on x86 hosts */
    {5, 6, 7, 48, 3, ET_PAD_VALID},   /* m = 63 (not a multiple of 4), 48 output channels: VNNI lanes */
};

static const int DENSE[][2] = {{784, 64}, {400, 64}, {64, 10}, {3, 1}, {200, 130}, {33, 7}};
static const uint8_t FMTS[] = {ET_FMT_INPUT, ET_FMT_ACT, ET_FMT_BN_OUT};
static const int8_t ALPHAS[] = {0, 1, 3, 5, 9, 15};

static uint64_t grads(uint64_t h, const et_layer_t *l, int conv, int *bad)
{
    uint32_t n8 = 0, n16 = 0;
    et_status_t a, b;
    uint32_t nin = (uint32_t)l->in.h * l->in.w * l->in.c;
    memset(dx, 0, sizeof dx);
    a = conv ? et_conv2d_backward_input_n(l, w, dz, dx, 0, &n8) : et_dense_backward_input_n(l, w, dz, dx, 0, &n8);
    h = fnv(h, dx, nin);
    b = conv ? et_conv2d_backward_input_n(l, w, dz, dx, 1, &n16) : et_dense_backward_input_n(l, w, dz, dx, 1, &n16);
    h = fnv(h, dx, nin * 2u);
    h = fnv(h, &n8, sizeof n8);
    h = fnv(h, &n16, sizeof n16);
    *bad += (a != ET_OK) + (b != ET_OK);
    if (conv) {
        et_status_t c = et_conv2d_weight_grad(l, x, dz, dw);
        h = fnv(h, dw, sizeof(int32_t) * l->out.c * l->kernel * l->kernel * l->in.c);
        *bad += c != ET_OK;
    }
    return h;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    size_t ci;
    unsigned fi, ai, act;
    int r;
    uint32_t seed = 12345;
    if (argc > 1 && strcmp(argv[1], "isa") == 0) {
#if ET_HOST_VNNI
        printf("vnni built %d picked %d\n", 1, et_host_vnni());
#else
        printf("vnni built %d picked %d\n", 0, 0);
#endif
#if ET_HOST_LANES
        printf("lanes built %d picked %d\n", 1, et_host_avx2());
#else
        printf("lanes built %d picked %d\n", 0, 0);
#endif
        return 0;
    }
    for (ci = 0; ci < sizeof CONV / sizeof CONV[0] + sizeof DENSE / sizeof DENSE[0]; ci++) {
        int conv = ci < sizeof CONV / sizeof CONV[0];
        for (fi = 0; fi < sizeof FMTS; fi++) {
            for (ai = 0; ai < sizeof ALPHAS; ai++) {
                for (act = 0; act < 2; act++) {
                    et_layer_t l;
                    uint64_t h = UINT64_C(14695981039346656037);
                    int bad = 0;
                    uint32_t s = seed++ * 2654435761u + 1u;
                    uint32_t nw, nx, nout;
                    memset(&l, 0, sizeof l);
                    l.activation = act ? ET_ACT_RELU : ET_ACT_NONE;
                    l.alpha_shift = ALPHAS[ai];
                    l.in.fmt = FMTS[fi];
                    l.out.fmt = act ? ET_FMT_ACT : ET_FMT_BIAS;
                    if (conv) {
                        const conv_case_t *c = &CONV[ci];
                        l.kind = ET_LAYER_CONV2D;
                        l.kernel = (uint8_t)c->k;
                        l.padding = (uint8_t)c->pad;
                        l.in.h = (uint16_t)c->ih;
                        l.in.w = (uint16_t)c->iw;
                        l.in.c = (uint16_t)c->ic;
                        l.out.h = (uint16_t)(c->pad == ET_PAD_SAME ? c->ih : c->ih - c->k + 1);
                        l.out.w = (uint16_t)(c->pad == ET_PAD_SAME ? c->iw : c->iw - c->k + 1);
                        l.out.c = (uint16_t)c->oc;
                    } else {
                        l.kind = ET_LAYER_DENSE;
                        l.in.h = l.in.w = l.out.h = l.out.w = 1;
                        l.in.c = (uint16_t)DENSE[ci - sizeof CONV / sizeof CONV[0]][0];
                        l.out.c = (uint16_t)DENSE[ci - sizeof CONV / sizeof CONV[0]][1];
                    }
                    nx = (uint32_t)l.in.h * l.in.w * l.in.c;
                    nout = (uint32_t)l.out.h * l.out.w * l.out.c;
                    nw = l.out.c * (conv ? (uint32_t)l.kernel * l.kernel : 1u) * l.in.c;
                    for (r = 0; r < rounds; r++) {
                        uint32_t pre = 0, clip = 0;
                        et_status_t st;
                        fill(&s, r % 3, nw, l.out.c, nx, nout);
                        memset(outbuf, 0, sizeof outbuf);
                        st = conv ? et_conv2d_forward_n(&l, w, bias, x, outbuf, &pre, &clip)
                                  : et_dense_forward_n(&l, w, bias, x, outbuf, &pre, &clip);
                        bad += st != ET_OK;
                        h = fnv(h, outbuf, nout * (act ? 1u : 2u));
                        h = fnv(h, &pre, sizeof pre);
                        h = fnv(h, &clip, sizeof clip);
                        h = grads(h, &l, conv, &bad);
                    }
                    printf("%s %u fmt %u alpha %d act %u bad %d hash %016llx\n", conv ? "conv" : "dense", (unsigned)ci,
                           (unsigned)FMTS[fi], ALPHAS[ai], act, bad, (unsigned long long)h);
                }
            }
        }
    }
    return 0;
}
