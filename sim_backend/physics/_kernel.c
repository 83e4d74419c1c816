/* Optional compiled kernel of the simulated PE macro (see fastpath.py).
 *
 * Same arithmetic, in the same order, as the pure-numpy paths in fastpath.py and
 * neuron.srm_forward, so spikes are bit-identical.  Compile with -ffp-contract=off (no FMA).
 */
#include <stdint.h>
#include <string.h>
#include <math.h>

/* SRM neurons on precomputed input z (B, T, N) -> spikes s (B, T, N) as uint8. */
void srm_kernel(const double *z, int64_t B, int64_t T, int64_t N,
                const double *th, const double *a, const double *inv_tau, double bref,
                const double *jump, double clo, double chi, uint8_t *s)
{
    double p[64], r[64];
    for (int64_t b = 0; b < B; b++) {
        for (int64_t j = 0; j < N; j++) { p[j] = 0.0; r[j] = 0.0; }
        for (int64_t t = 0; t < T; t++) {
            const double *zt = z + (b * T + t) * N;
            uint8_t *st = s + (b * T + t) * N;
            for (int64_t j = 0; j < N; j++) {
                double x = zt[j];
                if (x < clo) x = clo;
                if (x > chi) x = chi;
                double xs = x * inv_tau[j];
                double pp = a[j] * p[j];
                p[j] = pp + xs;
                double u = p[j] + r[j];
                int spk = u >= th[j];
                st[j] = (uint8_t)spk;
                double rb = bref * r[j];
                r[j] = rb - (spk ? jump[j] : 0.0);
            }
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

static uint8_t POS[256][8];
static uint8_t CNT[256];
static int POS_READY = 0;
static void init_pos(void)
{
    for (int m = 0; m < 256; m++) {
        int c = 0;
        for (int k = 0; k < 8; k++) if (m & (1 << k)) POS[m][c++] = (uint8_t)k;
        CNT[m] = (uint8_t)c;
    }
    POS_READY = 1;
}

/* Fused layer: event-driven crossbar accumulation (active rows in ascending order), column-
 * aggregated noise z += sqrt(var + var0) * table[idx], then the SRM neurons.
 * spikes (B, T, R) uint8 0/1 with R a multiple of 8; wv (R, 2N) = [wd | var]; noisy: draw indices
 * from ``key`` (else no noise).  Returns the number of output spikes; per-row input counts
 * are added to row_counts (R). */
int64_t layer_kernel(const uint8_t *spikes, int64_t B, int64_t T, int64_t R, int64_t N,
                     const double *wv, int noisy, uint64_t key,
                     const double *table, const double *var0,
                     const double *th, const double *a, const double *inv_tau, double bref,
                     const double *jump, double clo, double chi,
                     uint8_t *s, int64_t *row_counts)
{
    double p[64], r[64], acc[128], nz[64];
    const int64_t M = 2 * N;
    int32_t act[1024 + 8];
    int64_t nout = 0;
    if (!POS_READY) init_pos();
    for (int64_t b = 0; b < B; b++) {
        for (int64_t j = 0; j < N; j++) { p[j] = 0.0; r[j] = 0.0; }
        for (int64_t t = 0; t < T; t++) {
            const uint8_t *in = spikes + (b * T + t) * R;
            int na = 0;
            for (int64_t i = 0; i < R; i += 8) {
                uint64_t w8;
                memcpy(&w8, in + i, 8);
                unsigned m = (unsigned)((w8 * 0x0102040810204080ULL) >> 56);
                const uint8_t *ps = POS[m];
                for (int k = 0; k < 8; k++) act[na + k] = (int32_t)(i + ps[k]);
                na += CNT[m];
            }
            /* z (first N) and variance (next N) of the active rows, ascending order */
            for (int64_t j = 0; j < M; j++) acc[j] = 0.0;
            for (int q = 0; q < na; q++) {
                int64_t i = act[q];
                const double *wr = wv + i * M;
                row_counts[i]++;
                for (int64_t j = 0; j < M; j++) acc[j] = acc[j] + wr[j];
            }
            uint8_t *st = s + (b * T + t) * N;
            if (noisy) {
                uint64_t e0 = (uint64_t)((b * T + t) * N);
                for (int64_t j = 0; j < N; j++) {
                    uint64_t e = e0 + (uint64_t)j;
                    uint64_t h = mix64(key + (e >> 2) * GOLDEN);
                    nz[j] = table[(h >> (16 * (e & 3))) & 0xFFFF];
                }
                for (int64_t j = 0; j < N; j++) {
                    double sd = sqrt(acc[N + j] + var0[j]);
                    acc[j] = acc[j] + sd * nz[j];
                }
            }
            for (int64_t j = 0; j < N; j++) {
                double x = acc[j];
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
        }
    }
    return nout;
}
