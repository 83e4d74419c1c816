/* Optional compiled kernel of the simulated PE macro (see fastpath.py).
 *
 * Same arithmetic, in the same order, as the pure-numpy paths in fastpath.py and
 * neuron.srm_forward, so spikes are bit-identical.  Compile with -ffp-contract=off (no FMA).
 */
#include <stdint.h>
#include <string.h>
#include <math.h>

/* One step of N SRM neurons: clamp the input x, PSP recursion, threshold, refractory kernel.
 * The single definition of the neuron arithmetic in C (same order as neuron.srm_forward). */
static inline __attribute__((always_inline)) int64_t
srm_step(const double *restrict x_in, int64_t N, const double *restrict th, const double *restrict a,
         const double *restrict inv_tau, double bref, const double *restrict jump, double clo,
         double chi, double *restrict p, double *restrict r, uint8_t *restrict st)
{
    int64_t nout = 0;
    for (int64_t j = 0; j < N; j++) {
        double x = x_in[j];
        if (x < clo) x = clo;
        if (x > chi) x = chi;
        double xs = x * inv_tau[j];
        double pp = a[j] * p[j];
        p[j] = pp + xs;
        double u = p[j] + r[j];
        int spk = u >= th[j];
        st[j] = (uint8_t)spk;
        nout += spk;
        double rb = bref * r[j];
        r[j] = rb - (spk ? jump[j] : 0.0);
    }
    return nout;
}

/* SRM neurons on precomputed input z (B, T, N) -> spikes s (B, T, N) as uint8. */
void srm_kernel(const double *z, int64_t B, int64_t T, int64_t N,
                const double *th, const double *a, const double *inv_tau, double bref,
                const double *jump, double clo, double chi, uint8_t *s)
{
    double p[N], r[N];
    for (int64_t b = 0; b < B; b++) {
        for (int64_t j = 0; j < N; j++) { p[j] = 0.0; r[j] = 0.0; }
        for (int64_t t = 0; t < T; t++) {
            srm_step(z + (b * T + t) * N, N, th, a, inv_tau, bref, jump, clo, chi, p, r,
                     s + (b * T + t) * N);
        }
    }
}

/* Counter-based noise bits: 16-bit index number e of a run = chunk (e & 3) of
 * splitmix64(key + (e >> 2) * GOLDEN).  Reproduced in numpy by fastpath.noise_indices_for. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
#define GOLDEN 0x9E3779B97F4A7C15ULL

/* Fused layer: event-driven crossbar accumulation (active rows in ascending order), column-
 * aggregated noise z += sqrt(var + var0) * table[idx >> 4] (4096-entry table), then the SRM neurons.
 * spikes (B, T, R) uint8 0/1 with R a multiple of 8; wv (R, 2N) = [wd | var]; noisy: draw indices
 * from ``key`` (else no noise).  Returns the number of output spikes; per-row input counts
 * are added to row_counts (R). */
static inline __attribute__((always_inline)) int64_t
layer_impl(const uint8_t *restrict spikes, int64_t B, int64_t T, int64_t R, const int64_t N,
           const double *restrict wv, int noisy, uint64_t key,
           const double *restrict table, const double *restrict var0,
           const double *restrict th, const double *restrict a, const double *restrict inv_tau,
           double bref, const double *restrict jump, double clo, double chi,
           uint8_t *restrict s, int64_t *restrict row_counts)
{
    double p[N], r[N], acc[2 * N], nz[N];
    const int64_t M = 2 * N;
    int64_t nout = 0;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t j = 0; j < N; j++) { p[j] = 0.0; r[j] = 0.0; }
        for (int64_t t = 0; t < T; t++) {
            const uint8_t *in = spikes + (b * T + t) * R;
            /* z (first N) and variance (next N) of the active rows, ascending order */
            const int64_t Mu = noisy ? M : N;
            for (int64_t j = 0; j < Mu; j++) acc[j] = 0.0;
            for (int64_t i0 = 0; i0 < R; i0 += 64) {
                uint64_t mask = 0;
                int64_t lim = (R - i0) < 64 ? (R - i0) : 64;
                for (int64_t k = 0; k < lim; k += 8) {
                    uint64_t w8;
                    memcpy(&w8, in + i0 + k, 8);
                    mask |= ((w8 * 0x0102040810204080ULL) >> 56) << k;
                }
                while (mask) {
                    int64_t i = i0 + __builtin_ctzll(mask);
                    mask &= mask - 1;
                    const double *wr = wv + i * M;
                    row_counts[i]++;
                    if (noisy) {
                        for (int64_t j = 0; j < M; j++) acc[j] = acc[j] + wr[j];
                    } else {
                        for (int64_t j = 0; j < N; j++) acc[j] = acc[j] + wr[j];
                    }
                }
            }
            uint8_t *st = s + (b * T + t) * N;
            if (noisy) {
                uint64_t e0 = (uint64_t)((b * T + t) * N);
                uint64_t h = 0;
                for (int64_t j = 0; j < N; j++) {
                    uint64_t e = e0 + (uint64_t)j;
                    if (j == 0 || (e & 3) == 0) h = mix64(key + (e >> 2) * GOLDEN);
                    nz[j] = table[((h >> (16 * (e & 3))) & 0xFFFF) >> 4];
                }
                for (int64_t j = 0; j < N; j++) {
                    double sd = sqrt(acc[N + j] + var0[j]);
                    acc[j] = acc[j] + sd * nz[j];
                }
            }
            nout += srm_step(acc, N, th, a, inv_tau, bref, jump, clo, chi, p, r, st);
        }
    }
    return nout;
}

int64_t layer_kernel(const uint8_t *spikes, int64_t B, int64_t T, int64_t R, int64_t N,
                     const double *wv, int noisy, uint64_t key,
                     const double *table, const double *var0,
                     const double *th, const double *a, const double *inv_tau, double bref,
                     const double *jump, double clo, double chi,
                     uint8_t *s, int64_t *row_counts)
{
    /* constant-N specialisations let the compiler unroll the short per-row loops */
    if (N == 12)
        return layer_impl(spikes, B, T, R, 12, wv, noisy, key, table, var0, th, a, inv_tau,
                          bref, jump, clo, chi, s, row_counts);
    if (N == 11)
        return layer_impl(spikes, B, T, R, 11, wv, noisy, key, table, var0, th, a, inv_tau,
                          bref, jump, clo, chi, s, row_counts);
    return layer_impl(spikes, B, T, R, N, wv, noisy, key, table, var0, th, a, inv_tau,
                      bref, jump, clo, chi, s, row_counts);
}
