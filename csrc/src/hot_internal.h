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

/*
 * AVX-512 VNNI (vpdpwssd, vpdpbusd: two int16 or four 8-bit products added into each int32 lane in
 * one instruction). target_clones can select a VNNI copy only through an Intel arch= name, which the
 * loader picks by CPU model, so other CPUs with VNNI (AMD Zen 4) would never run it. The layer kernels
 * whose dot products gain from it are defined with ET_HOT_VNNI_DISPATCH instead: one more copy, built
 * for x86-64-v4 plus VNNI, picked on every call by the CPU's feature bits (two loads and a test), the
 * ET_HOT clones otherwise. -DET_NO_VNNI leaves it out (tests compare the builds).
 *
 * Such a kernel is written `ET_HOT_VNNI_DEF(ret, name)(params) { ... }` followed by
 * `ET_HOT_VNNI_DISPATCH(ret, name, (params), (args))`, args the parenthesised arguments that pass the
 * parameters on. With VNNI the definition is the always-inline `name##_body` and the dispatch defines
 * `name`; everywhere else the definition is the ET_HOT function `name` itself and the dispatch is
 * empty, so other builds (Cortex-M among them) compile exactly what they did before.
 */
#if ET_HOST_WIDE && !defined(ET_NO_VNNI)
#define ET_HOST_VNNI 1
static inline int et_host_vnni(void)
{
    return __builtin_cpu_supports("x86-64-v4") && __builtin_cpu_supports("avx512vnni");
}
#define ET_HOT_VNNI_DEF(ret, name) ET_HOT_INLINE ret name##_body
#define ET_HOT_VNNI_DISPATCH(ret, name, params, args)                                                   \
    __attribute__((target("arch=x86-64-v4,avx512vnni"))) static ret name##_vnni params                 \
    {                                                                                                   \
        return name##_body args;                                                                        \
    }                                                                                                   \
    ET_HOT static ret name##_clones params                                                              \
    {                                                                                                   \
        return name##_body args;                                                                        \
    }                                                                                                   \
    ret name params                                                                                     \
    {                                                                                                   \
        return et_host_vnni() ? name##_vnni args : name##_clones args;                                  \
    }
#else
#define ET_HOST_VNNI 0
#define ET_HOT_VNNI_DEF(ret, name) ET_HOT ret name
#define ET_HOT_VNNI_DISPATCH(ret, name, params, args)
#endif

/*
 * The conv forward kernel has one more copy for CPUs without VNNI: eight output channels in the lanes
 * of AVX2's vpmaddwd (layers.c), picked on every call where the CPU has AVX2 and the VNNI copy does
 * not apply. -DET_NO_LANES leaves it out (tests compare the builds).
 */
#if ET_HOST_WIDE && !defined(ET_NO_LANES)
#define ET_HOST_LANES 1
static inline int et_host_avx2(void)
{
    return __builtin_cpu_supports("avx2") != 0;
}
#else
#define ET_HOST_LANES 0
#endif

#endif /* EDGETRAIN_HOT_INTERNAL_H */
