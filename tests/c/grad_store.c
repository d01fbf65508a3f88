/*
 * The input-gradient store of the dense kernel with its clamp counter (et_dense_backward_input_n,
 * clip_internal.h), for tests/test_grad_store.py to compare with the twin on values it chooses.
 * Reads from stdin: n m alpha_shift wide, then n*m weights (row o: the weights of output o), then
 * n output gradients; prints the m input gradients and the clamp count on one line.
 */
#include <stdio.h>
#include <string.h>

#include "edgetrain/edgetrain.h"
#include "clip_internal.h"

static int8_t w[1 << 16];
static int8_t dz[256];
static int16_t dx[1 << 12];

int main(void)
{
    int n, m, alpha, wide, v, i;
    uint32_t clips = 0;
    et_layer_t l;
    if (scanf("%d %d %d %d", &n, &m, &alpha, &wide) != 4 || n < 1 || n > 256 || m < 1 || m > 4096 || n * m > 65536) {
        return 2;
    }
    for (i = 0; i < n * m + n; i++) {
        if (scanf("%d", &v) != 1) {
            return 2;
        }
        if (i < n * m) {
            w[i] = (int8_t)v;
        } else {
            dz[i - n * m] = (int8_t)v;
        }
    }
    memset(&l, 0, sizeof l);
    l.kind = ET_LAYER_DENSE;
    l.alpha_shift = (int8_t)alpha;
    l.in.h = l.in.w = l.out.h = l.out.w = 1;
    l.in.c = (uint16_t)m;
    l.out.c = (uint16_t)n;
    l.in.fmt = ET_FMT_ACT;
    l.out.fmt = ET_FMT_BIAS;
    if (et_dense_backward_input_n(&l, w, dz, dx, wide, &clips) != ET_OK) {
        return 3;
    }
    for (i = 0; i < m; i++) {
        printf("%d ", wide ? dx[i] : ((int8_t *)dx)[i]);
    }
    printf("clips %u\n", (unsigned)clips);
    return 0;
}
