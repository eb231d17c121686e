// EXPERIMENT (issue 13): the deform_conv forward GEMM (out^T = cols^T x W^T, cuBLAS "tt":
// m = C_out, n = N*Ho*Wo, k = C_in*9, float32) with cuBLAS's default against every
// algorithm cuBLASLt's heuristic offers (up to 64), each timed between CUDA events.
// Build (NV = the nvidia/cu13 folder of the torch install):
//   nvcc -std=c++17 -O2 -I$NV/include -o /tmp/g gemm_lt.cu -L$NV/lib -l:libcublasLt.so.13 \
//        -l:libcublas.so.13 -Xlinker -rpath=$NV/lib
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x) do { auto e = (x); if (e != 0) { std::printf("error %d at line %d\n", int(e), __LINE__); std::exit(1); } } while (0)

int main() {
  cublasHandle_t blas;
  cublasLtHandle_t lt;
  CK(cublasCreate(&blas));
  CK(cublasLtCreate(&lt));
  const size_t workspace_size = size_t(64) << 20;
  void* workspace;
  CK(cudaMalloc(&workspace, workspace_size));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  struct Shape { int n, c, h, w; } shapes[] = {{2, 256, 64, 64}, {8, 512, 25, 34}, {8, 256, 50, 84}};
  std::printf("| size | algorithm | tile | stages | split-K | waves | us | / cuBLAS |\n|---|---|---|---|---|---|---|---|\n");
  for (const Shape& s : shapes) {
    const int m = s.c, n = s.n * s.h * s.w, k = s.c * 9;
    float *a, *b, *c;
    CK(cudaMalloc(&a, size_t(k) * m * 4));
    CK(cudaMalloc(&b, size_t(n) * k * 4));
    CK(cudaMalloc(&c, size_t(m) * n * 4));
    std::vector<float> host(size_t(n) * k);
    for (size_t i = 0; i < host.size(); ++i) host[i] = float((i * 2654435761u) % 1000) / 1000.f - 0.5f;
    CK(cudaMemcpy(b, host.data(), size_t(n) * k * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(a, host.data(), size_t(k) * m * 4, cudaMemcpyHostToDevice));
    const float one = 1.f, zero = 0.f;
    auto time_us = [&](auto&& fn) {
      for (int i = 0; i < 3; ++i) fn();
      float best = 1e30f;
      for (int r = 0; r < 3; ++r) {
        CK(cudaEventRecord(e0));
        for (int i = 0; i < 20; ++i) fn();
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        best = std::min(best, ms * 1000.f / 20);
      }
      return best;
    };
    // A: weight [m x k] row-major = [k x m] column-major (op T); B: columns [k x n]
    // row-major = [n x k] column-major (op T); C: [m x n] column-major = the NHWC rows.
    const float base = time_us([&] {
      CK(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_T, m, n, k, &one, a, k, b, n, &zero, c, m));
    });
    char size[64];
    std::snprintf(size, sizeof size, "%dx%dx%dx%d", s.n, s.c, s.h, s.w);
    std::printf("| %s | cublasSgemm | | | | | %.1f | 1.000 |\n", size, base);
    cublasLtMatmulDesc_t op;
    CK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t t = CUBLAS_OP_T;
    CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t));
    CK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &t, sizeof t));
    cublasLtMatrixLayout_t la, lb, lc;
    CK(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, k, m, k));
    CK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, n, k, n));
    CK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, m, n, m));
    cublasLtMatmulPreference_t pref;
    CK(cublasLtMatmulPreferenceCreate(&pref));
    CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_size,
                                            sizeof workspace_size));
    cublasLtMatmulHeuristicResult_t results[64];
    int count = 0;
    CK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 64, results, &count));
    for (int i = 0; i < count; ++i) {
      if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
      const cublasLtMatmulAlgo_t* algo = &results[i].algo;
      int id = 0, tile = 0, stages = 0, splitk = 0;
      size_t got;
      cublasLtMatmulAlgoConfigGetAttribute(algo, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, &got);
      cublasLtMatmulAlgoConfigGetAttribute(algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &got);
      cublasLtMatmulAlgoConfigGetAttribute(algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &got);
      cublasLtMatmulAlgoConfigGetAttribute(algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk, &got);
      const float us = time_us([&] {
        CK(cublasLtMatmul(lt, op, &one, a, la, b, lb, &zero, c, lc, c, lc, algo, workspace, workspace_size, 0));
      });
      std::printf("| %s | Lt #%d (id %d) | %d | %d | %d | %.2f | %.1f | %.3f |\n", size, i, id, tile, stages, splitk,
                  results[i].wavesCount, us, us / base);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(op);
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaFree(c));
  }
  return 0;
}
