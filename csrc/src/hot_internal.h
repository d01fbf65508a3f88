/*
 * edgetrain — how the host build compiles the hot loops, private to csrc/src (lrt.c, layers.c).
 *
 * x86-64 hosts (gcc 11 or later for the x86-64-v4 name, glibc for the ifunc that picks a clone;
 * <string.h> below defines __GLIBC__ there): the functions marked ET_HOT are compiled three times,
 * for AVX-512 (x86-64-v4), AVX2 and baseline x86-64, and the loader picks one for the CPU it runs
 * on (gcc function multiversioning, an ifunc). Integer arithmetic is exact, so every clone gives
 * the same bits; -DET_NO_MULTIVERSION builds the portable loops only (tests compare the builds).
 * Every other target (Cortex-M, other compilers) sees plain C: ET_HOT is empty, ET_HOST_WIDE 0.
 *
 * ET_HOT goes on non-inline functions (static or not) that hold the loops; the kernels they call are
 * ET_HOT_INLINE (always inlined on such hosts, so each clone gets its own copy compiled for its
 * instruction set; plain static functions elsewhere, as before).
 */
#ifndef EDGETRAIN_HOT_INTERNAL_H
#define EDGETRAIN_HOT_INTERNAL_H

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && __GNUC__ >= 11 && !defined(__clang__) && defined(__linux__) && \
    defined(__GLIBC__) && !defined(ET_NO_MULTIVERSION)
#define ET_HOT __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#define ET_HOST_WIDE 1
#else
#define ET_HOT
#define ET_HOST_WIDE 0
#endif

#if ET_HOST_WIDE
#define ET_HOT_INLINE static inline __attribute__((always_inline))
#else
#define ET_HOT_INLINE static
#endif

#endif /* EDGETRAIN_HOT_INTERNAL_H */
