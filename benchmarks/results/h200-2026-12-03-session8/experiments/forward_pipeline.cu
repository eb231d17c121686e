// EXPERIMENT (issue 13): the deform_conv forward pipeline (im2col -> SGEMM -> NCHW transpose)
// at 8x512x25x34, standalone (cuBLAS, no torch), with the tree's im2col element:
//  1. im2col tuning: channels a thread (12..24) and launch bounds (min blocks a SM);
//  2. overlap: the batch in two halves; while the GEMM of half A runs one partial wave (its
//     CTAs leave SMs idle), half B's im2col runs on a few SMs only: a grid of G one-per-SM
//     blocks (1024 threads, all of the shared memory reserved, so none sits beside a GEMM
//     CTA); half B's GEMM waits for it. Compared with the sequential pipeline, per call
//     (events around one call, as the benchmarks time it) and back to back, output checked.
// Build (NV = torch's nvidia/cu13 folder):  nvcc -std=c++17 -O3 -arch=sm_90 -Isrc/detectron2/csrc \
//   -I$NV/include -o /tmp/p forward_pipeline.cu -L$NV/lib -l:libcublas.so.13 -Xlinker -rpath=$NV/lib
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "ops/deform_conv/deform_conv_utils.h"

namespace dc = detectron2::deform_conv;
using dc::Geometry;

#define CK(x) do { auto e = (x); if (e != 0) { std::printf("error %d line %d\n", int(e), __LINE__); std::exit(1); } } while (0)

// The tree's 2-D im2col kernel (mask-free), with launch bounds when MinBlocks > 0.
#define IM2COL_BODY                                                                                 \
  const int K = int(g.kernel_size()), P = int(g.out_pixels()), cg = int(g.group_channels());        \
  const int per = (cg + chunks - 1) / chunks;                                                       \
  const int64_t tasks = g.deformable_groups * int64_t(chunks) * K, width = g.column_width();         \
  for (int64_t task = blockIdx.y; task < tasks; task += gridDim.y) {                                \
    const int k = int(task % K), chunk = int(task / K % chunks), dg = int(task / K / chunks);        \
    const int group_end = (dg + 1) * cg;                                                            \
    const int c0 = min(dg * cg + chunk * per, group_end), c1 = min(c0 + per, group_end);            \
    if (c0 >= c1) continue;                                                                         \
    for (int64_t column = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; column < width;           \
         column += int64_t(blockDim.x) * gridDim.x) {                                               \
      const int b = int(column) / P, pixel = int(column) - b * P;                                   \
      dc::im2col_element<float, int>(g, in, off, nullptr, b, dg, k, pixel, c0, c1, cols);           \
    }                                                                                               \
  }

__global__ void im2col_plain(const float* __restrict__ in, const float* __restrict__ off, Geometry g, int chunks,
                             float* __restrict__ cols) {
  IM2COL_BODY
}

template <int MinBlocks>
__global__ void __launch_bounds__(256, MinBlocks) im2col_lb(const float* __restrict__ in, const float* __restrict__ off,
                                                            Geometry g, int chunks, float* __restrict__ cols) {
  IM2COL_BODY
}

// The same work for the few-SM launch (1024-thread blocks): (task, column) pairs flattened,
// so that every thread of the few blocks has work.
__global__ void im2col_wide(const float* __restrict__ in, const float* __restrict__ off, Geometry g, int chunks,
                            float* __restrict__ cols) {
  extern __shared__ char reserved[];  // only reserves the SM (never touched)
  const int K = int(g.kernel_size()), P = int(g.out_pixels()), cg = int(g.group_channels());
  const int per = (cg + chunks - 1) / chunks, width = int(g.column_width());
  const int total = int(g.deformable_groups) * chunks * K * width;
  for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += blockDim.x * gridDim.x) {
    const int task = idx / width, column = idx - task * width;
    const int k = task % K, chunk = task / K % chunks, dg = task / K / chunks;
    const int group_end = (dg + 1) * cg;
    const int c0 = min(dg * cg + chunk * per, group_end), c1 = min(c0 + per, group_end);
    if (c0 >= c1) continue;
    const int b = column / P, pixel = column - b * P;
    dc::im2col_element<float, int>(g, in, off, nullptr, b, dg, k, pixel, c0, c1, cols);
  }
}

// rows [n][P][M] -> out [n][M][P] (the tree's tiled transpose, without bias).
__global__ void to_nchw(const float* __restrict__ rows, int64_t batch, int64_t pixels, int64_t channels,
                        float* __restrict__ out) {
  __shared__ float tile[32][33];
  const int64_t p0 = int64_t(blockIdx.x) * 32, m0 = int64_t(blockIdx.y) * 32;
  for (int64_t b = blockIdx.z; b < batch; b += gridDim.z) {
    const float* src = rows + b * pixels * channels;
    float* dst = out + b * channels * pixels;
    for (int r = threadIdx.y; r < 32; r += 8) {
      const int64_t p = p0 + r, m = m0 + threadIdx.x;
      if (p < pixels && m < channels) tile[r][threadIdx.x] = src[p * channels + m];
    }
    __syncthreads();
    for (int r = threadIdx.y; r < 32; r += 8) {
      const int64_t m = m0 + r, p = p0 + threadIdx.x;
      if (p < pixels && m < channels) dst[m * pixels + p] = tile[threadIdx.x][r];
    }
    __syncthreads();
  }
}

int main() {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  int smem_optin = 0;
  CK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
  CK(cudaFuncSetAttribute(im2col_wide, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_optin));
  std::printf("# deform_conv forward pipeline on %s (%d SMs, %d B shared memory a block)\n\n", prop.name,
              prop.multiProcessorCount, smem_optin);
  const int n = 8, c = 512, h = 25, w = 34, m = 512, K = 9 * c, P = h * w, half = n / 2;
  Geometry full{n, c, h, w, h, w, 3, 3, 1, 1, 1, 1, 1, 1, 1}, halfg = full;
  halfg.batch = half;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  std::vector<float> h_in(size_t(n) * c * P), h_off(size_t(n) * 18 * P), h_w(size_t(m) * K);
  for (auto& v : h_in) v = normal(rng);
  for (auto& v : h_off) v = 2.f * normal(rng);
  for (auto& v : h_w) v = 0.02f * normal(rng);
  float *in, *off, *wt, *cols, *cols_a, *cols_b, *rows, *out, *out2;
  CK(cudaMalloc(&in, h_in.size() * 4));
  CK(cudaMalloc(&off, h_off.size() * 4));
  CK(cudaMalloc(&wt, h_w.size() * 4));
  CK(cudaMalloc(&cols, size_t(K) * n * P * 4));
  CK(cudaMalloc(&cols_a, size_t(K) * half * P * 4));
  CK(cudaMalloc(&cols_b, size_t(K) * half * P * 4));
  CK(cudaMalloc(&rows, size_t(n) * P * m * 4));
  CK(cudaMalloc(&out, size_t(n) * P * m * 4));
  CK(cudaMalloc(&out2, size_t(n) * P * m * 4));
  CK(cudaMemcpy(in, h_in.data(), h_in.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(off, h_off.data(), h_off.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(wt, h_w.data(), h_w.size() * 4, cudaMemcpyHostToDevice));
  cublasHandle_t blas;
  CK(cublasCreate(&blas));
  cudaStream_t s1, s2;
  CK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
  CK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
  CK(cublasSetStream(blas, s1));
  cudaEvent_t fork, join, e0, e1;
  CK(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
  CK(cudaEventCreateWithFlags(&join, cudaEventDisableTiming));
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  const float one = 1.f, zero = 0.f;
  auto gemm = [&](const float* columns, int pixels, float* dst) {  // dst [pixels][m] = columns^T x W^T
    CK(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_T, m, pixels, K, &one, wt, K, columns, pixels, &zero, dst, m));
  };
  auto launch_im2col = [&](const Geometry& g, const float* input, float* dst, int per_thread, int lb, cudaStream_t s) {
    const int chunks = (c + per_thread - 1) / per_thread;
    dim3 grid(unsigned((g.column_width() + 255) / 256), unsigned(chunks * 9));
    if (lb == 0) im2col_plain<<<grid, 256, 0, s>>>(input, off, g, chunks, dst);
    if (lb == 4) im2col_lb<4><<<grid, 256, 0, s>>>(input, off, g, chunks, dst);
    if (lb == 5) im2col_lb<5><<<grid, 256, 0, s>>>(input, off, g, chunks, dst);
    if (lb == 6) im2col_lb<6><<<grid, 256, 0, s>>>(input, off, g, chunks, dst);
  };
  auto transpose = [&](float* dst, cudaStream_t s) {
    to_nchw<<<dim3((P + 31) / 32, (m + 31) / 32, n), dim3(32, 8), 0, s>>>(rows, n, P, m, dst);
  };
  auto sequential = [&](float* dst) {
    launch_im2col(full, in, cols, 16, 0, s1);
    gemm(cols, n * P, rows);
    transpose(dst, s1);
  };
  auto overlapped = [&](int sms, float* dst) {
    CK(cudaEventRecord(fork, s1));
    CK(cudaStreamWaitEvent(s2, fork));
    // half B on `sms` SMs (one 1024-thread block each, all shared memory reserved)
    const float* in_b = in + size_t(half) * c * P;
    Geometry gb = halfg;
    im2col_wide<<<dim3(sms, 1), 1024, smem_optin, s2>>>(in_b, off + size_t(half) * 18 * P, gb, 32, cols_b);
    CK(cudaEventRecord(join, s2));
    launch_im2col(halfg, in, cols_a, 16, 0, s1);
    gemm(cols_a, half * P, rows);
    CK(cudaStreamWaitEvent(s1, join));
    gemm(cols_b, half * P, rows + size_t(half) * P * m);
    transpose(dst, s1);
  };
  auto per_call_us = [&](auto&& fn) {  // median of 21 calls, events around each, synchronized
    for (int i = 0; i < 3; ++i) fn();
    std::vector<float> t;
    for (int i = 0; i < 21; ++i) {
      CK(cudaStreamSynchronize(s1));
      CK(cudaEventRecord(e0, s1));
      fn();
      CK(cudaEventRecord(e1, s1));
      CK(cudaEventSynchronize(e1));
      float ms;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      t.push_back(ms * 1000.f);
    }
    std::sort(t.begin(), t.end());
    return t[10];
  };
  auto back_to_back_us = [&](auto&& fn) {
    for (int i = 0; i < 3; ++i) fn();
    float best = 1e30f;
    for (int r = 0; r < 3; ++r) {
      CK(cudaEventRecord(e0, s1));
      for (int i = 0; i < 20; ++i) fn();
      CK(cudaEventRecord(e1, s1));
      CK(cudaEventSynchronize(e1));
      float ms;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      best = std::min(best, ms * 1000.f / 20);
    }
    return best;
  };
  // warm up the clocks
  for (int i = 0; i < 200; ++i) gemm(cols, n * P, rows);
  CK(cudaDeviceSynchronize());

  std::printf("## 1. im2col alone (8x512x25x34, back to back)\n\n| channels a thread | min blocks | us |\n|---|---|---|\n");
  for (int per : {12, 16, 20, 24})
    for (int lb : {0, 4, 5, 6})
      std::printf("| %d | %d | %.1f |\n", per, lb, back_to_back_us([&] { launch_im2col(full, in, cols, per, lb, s1); }));
  std::printf("\n| wide few-SM im2col of half B | us |\n|---|---|\n");
  for (int sms : {16, 20, 24, 132})
    std::printf("| %d SMs | %.1f |\n", sms, back_to_back_us([&] {
      im2col_wide<<<dim3(sms, 1), 1024, smem_optin, s1>>>(in, off, halfg, 32, cols_b);
    }));
  std::printf("\n| stage | us |\n|---|---|\n");
  std::printf("| GEMM full (n*P = %d) | %.1f |\n", n * P, back_to_back_us([&] { gemm(cols, n * P, rows); }));
  std::printf("| GEMM half (n*P = %d) | %.1f |\n", half * P, back_to_back_us([&] { gemm(cols_a, half * P, rows); }));
  std::printf("| transpose | %.1f |\n", back_to_back_us([&] { transpose(out, s1); }));

  if (std::getenv("SIZES") != nullptr) {  // call 5: launch bounds at every benchmark size
    std::printf("## 3. im2col at the benchmark sizes, 16 channels a thread (back to back)\n\n"
                "| size | no bounds us | min 4 blocks | min 5 blocks | min 6 blocks |\n|---|---|---|---|---|\n");
    const int sizes[][4] = {{2, 256, 64, 64}, {8, 512, 25, 34}, {2, 256, 50, 84}, {8, 256, 50, 84},
                            {2, 256, 25, 42}, {8, 256, 25, 42}, {2, 64, 32, 32}};
    for (const auto& z : sizes) {
      Geometry g{z[0], z[1], z[2], z[3], z[2], z[3], 3, 3, 1, 1, 1, 1, 1, 1, 1};
      const size_t pixels = size_t(z[0]) * z[2] * z[3];
      std::vector<float> hx(pixels * z[1]), ho(pixels * 18);
      for (auto& v : hx) v = normal(rng);
      for (auto& v : ho) v = 2.f * normal(rng);
      float *x, *o, *col;
      CK(cudaMalloc(&x, hx.size() * 4));
      CK(cudaMalloc(&o, ho.size() * 4));
      CK(cudaMalloc(&col, pixels * z[1] * 9 * 4));
      CK(cudaMemcpy(x, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(o, ho.data(), ho.size() * 4, cudaMemcpyHostToDevice));
      std::printf("| %dx%dx%dx%d |", z[0], z[1], z[2], z[3]);
      for (int lb : {0, 4, 5, 6})
        std::printf(" %.1f |", back_to_back_us([&] {
          const int chunks = (z[1] + 15) / 16;
          dim3 grid(unsigned((g.column_width() + 255) / 256), unsigned(chunks * 9));
          if (lb == 0) im2col_plain<<<grid, 256, 0, s1>>>(x, o, g, chunks, col);
          if (lb == 4) im2col_lb<4><<<grid, 256, 0, s1>>>(x, o, g, chunks, col);
          if (lb == 5) im2col_lb<5><<<grid, 256, 0, s1>>>(x, o, g, chunks, col);
          if (lb == 6) im2col_lb<6><<<grid, 256, 0, s1>>>(x, o, g, chunks, col);
        }));
      std::printf("\n");
      CK(cudaFree(x));
      CK(cudaFree(o));
      CK(cudaFree(col));
    }
    return 0;
  }
  sequential(out);
  CK(cudaDeviceSynchronize());
  std::vector<float> ref(size_t(n) * P * m), got(ref.size());
  CK(cudaMemcpy(ref.data(), out, ref.size() * 4, cudaMemcpyDeviceToHost));
  std::printf("\n## 2. pipelines\n\n| pipeline | per call us (median of 21) | back to back us | max abs diff |\n|---|---|---|---|\n");
  std::printf("| sequential | %.1f | %.1f | 0 |\n", per_call_us([&] { sequential(out); }),
              back_to_back_us([&] { sequential(out); }));
  for (int sms : {12, 16, 20, 24, 28}) {
    CK(cudaMemset(out2, 0xff, ref.size() * 4));
    overlapped(sms, out2);
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(got.data(), out2, got.size() * 4, cudaMemcpyDeviceToHost));
    double diff = 0;
    for (size_t i = 0; i < got.size(); ++i) diff = std::max(diff, double(std::fabs(got[i] - ref[i])));
    if (!(diff == diff)) diff = 1e30;
    std::printf("| halves, im2col B on %d SMs | %.1f | %.1f | %.3g |\n", sms, per_call_us([&] { overlapped(sms, out2); }),
                back_to_back_us([&] { overlapped(sms, out2); }), diff);
  }
  return 0;
}
