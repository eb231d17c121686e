// EXPERIMENT (issue 13): deformable im2col kernel variants, timed side by side in one
// standalone program (no torch): the kernel of 2f523d3 ("old": 1-D grid, 64-bit index
// math) against the 2-D grid with 32-bit index math and three forms of the channel loop.
// Every variant's columns are compared with the old kernel's. Build and run from the repo
// root, with the old header extracted first:
//   mkdir -p /tmp/old && git show 2f523d3:src/detectron2/csrc/ops/deform_conv/deform_conv_utils.h \
//     | sed 's/#pragma once//' > /tmp/old/old_deform_conv_utils.h
//   nvcc -std=c++17 -O3 -arch=sm_90 -Isrc/detectron2/csrc -I/tmp/old -o /tmp/v \
//     benchmarks/results/h200-2026-12-03-session8/experiments/im2col_variants.cu && /tmp/v
// Form 0 is the tree's own im2col_element: in call 1 (call1_im2col_variants.md) that was
// the corner-pointer loop; the tree has since taken the row-pointer loop (form 2).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "ops/deform_conv/deform_conv_utils.h"
namespace old_impl {
#include "old_deform_conv_utils.h"
}

using detectron2::deform_conv::Geometry;
namespace dc = detectron2::deform_conv;
namespace od = old_impl::detectron2::deform_conv;

#define CHECK(x)                                                              \
  do {                                                                        \
    cudaError_t e = (x);                                                      \
    if (e != cudaSuccess) {                                                   \
      std::printf("CUDA error %s at line %d\n", cudaGetErrorString(e), __LINE__); \
      std::exit(1);                                                           \
    }                                                                         \
  } while (0)

// ---- the old kernel (2f523d3) ----
__global__ void old_kernel(const float* __restrict__ input, const float* __restrict__ offset,
                           const float* __restrict__ mask, od::Geometry g, int64_t chunks, float* __restrict__ columns) {
  const int64_t P = g.out_pixels(), N = g.batch * P, K = g.kernel_size(), cg = g.group_channels();
  const int64_t total = g.deformable_groups * chunks * K * N;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < total; idx += int64_t(blockDim.x) * gridDim.x) {
    const int64_t column = idx % N;
    int64_t rest = idx / N;
    const int64_t b = column / P, pixel = column % P, k = rest % K;
    rest /= K;
    const int64_t chunk = rest % chunks, dg = rest / chunks;
    const int64_t per = (cg + chunks - 1) / chunks, group_end = (dg + 1) * cg;
    int64_t c0 = dg * cg + chunk * per;
    if (c0 > group_end) c0 = group_end;
    const int64_t c1 = c0 + per < group_end ? c0 + per : group_end;
    if (c0 < c1) od::im2col_element(g, input, offset, mask, b, dg, k, pixel, c0, c1, columns);
  }
}

// ---- channel-loop forms for the 2-D kernel ----
// 0: the header's im2col_element (a pointer per corner).
// 1: unsigned 32-bit corner offsets from one advancing plane pointer.
// 2: two row pointers (top and bottom), the right corners at +1.
template <int Form, typename I>
__device__ __forceinline__ void element(const Geometry& g, const float* __restrict__ input,
                                        const float* __restrict__ offset, const float* __restrict__ mask, I b, I dg,
                                        I k, I pixel, I c0, I c1, float* __restrict__ columns) {
  if constexpr (Form == 0) {
    dc::im2col_element<float, I>(g, input, offset, mask, b, dg, k, pixel, c0, c1, columns);
  } else {
    const dc::Tap<float, I> t = dc::tap_of(g, offset, mask, b, dg, k, pixel);
    const I count = c1 - c0, stride = I(g.kernel_size()) * I(g.column_width());
    float* __restrict__ out = columns + dc::column_index(g, c0, k, b, pixel);
    if (!t.corners.inside) {
      for (I i = 0; i < count; ++i, out += stride) *out = 0.f;
      return;
    }
    float w[4];
    dc::corner_weights(t.corners, w);
    for (int q = 0; q < 4; ++q) w[q] *= t.mask;
    const I plane_size = I(g.height) * I(g.width);
    const float* __restrict__ plane = input + (b * I(g.channels) + c0) * plane_size;
    bool has[4];
    for (int q = 0; q < 4; ++q) has[q] = t.corners.idx[q] >= 0;
    if constexpr (Form == 1) {
      uint32_t at[4];
      for (int q = 0; q < 4; ++q) at[q] = has[q] ? uint32_t(t.corners.idx[q]) : 0u;
#pragma unroll 4
      for (I i = 0; i < count; ++i) {
        float v[4];
        for (int q = 0; q < 4; ++q) v[q] = has[q] ? __ldg(plane + at[q]) : 0.f;
        *out = w[0] * v[0] + w[1] * v[1] + w[2] * v[2] + w[3] * v[3];
        plane += plane_size;
        out += stride;
      }
    } else {
      const I W = I(g.width);
      I top = has[0] ? t.corners.idx[0] : has[1] ? t.corners.idx[1] - 1 : has[2] ? t.corners.idx[2] - W : t.corners.idx[3] - W - 1;
      const float* r0 = plane + top;  // only dereferenced where a corner is inside
      const float* r1 = r0 + W;
#pragma unroll 4
      for (I i = 0; i < count; ++i) {
        float v[4];
        v[0] = has[0] ? __ldg(r0) : 0.f;
        v[1] = has[1] ? __ldg(r0 + 1) : 0.f;
        v[2] = has[2] ? __ldg(r1) : 0.f;
        v[3] = has[3] ? __ldg(r1 + 1) : 0.f;
        *out = w[0] * v[0] + w[1] * v[1] + w[2] * v[2] + w[3] * v[3];
        r0 += plane_size;
        r1 += plane_size;
        out += stride;
      }
    }
  }
}

template <int Form, typename I>
__global__ void new_kernel(const float* __restrict__ input, const float* __restrict__ offset,
                           const float* __restrict__ mask, Geometry g, I chunks, float* __restrict__ columns) {
  const I K = I(g.kernel_size()), P = I(g.out_pixels()), cg = I(g.group_channels());
  const I per = (cg + chunks - 1) / chunks;
  const int64_t tasks = g.deformable_groups * int64_t(chunks) * K, width = g.column_width();
  for (int64_t task = blockIdx.y; task < tasks; task += gridDim.y) {
    const I k = I(task % K), chunk = I(task / K % chunks), dg = I(task / K / chunks);
    const I group_end = (dg + 1) * cg;
    const I c0 = min(dg * cg + chunk * per, group_end), c1 = min(c0 + per, group_end);
    if (c0 >= c1) continue;
    for (int64_t column = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; column < width;
         column += int64_t(blockDim.x) * gridDim.x) {
      const I b = I(column) / P, pixel = I(column) - b * P;
      element<Form, I>(g, input, offset, mask, b, dg, k, pixel, c0, c1, columns);
    }
  }
}

struct Case {
  int n, c, h, w;
  bool with_mask;
};

int64_t old_chunks(const Geometry& g) {
  const int64_t taps = g.deformable_groups * g.kernel_size() * g.batch * g.out_pixels(), cg = g.group_channels();
  const int64_t base = std::max<int64_t>(1, std::min<int64_t>(cg, ((int64_t(1) << 18) + taps - 1) / taps));
  return std::max<int64_t>(base, std::min<int64_t>(cg, (cg + 15) / 16));
}

int main() {
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("# im2col variants on %s (%d SMs)\n\n", prop.name, prop.multiProcessorCount);
  std::printf("| size | mask | variant | channels/thread | us | / old | max abs diff |\n|---|---|---|---|---|---|---|\n");
  const Case cases[] = {{2, 256, 64, 64, false}, {8, 512, 25, 34, false}, {8, 512, 25, 34, true},
                        {8, 256, 50, 84, false}, {2, 64, 32, 32, false}};
  for (const Case& cs : cases) {
    Geometry g{cs.n, cs.c, cs.h, cs.w, cs.h, cs.w, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    od::Geometry og{cs.n, cs.c, cs.h, cs.w, cs.h, cs.w, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    const size_t in_n = size_t(cs.n) * cs.c * cs.h * cs.w, off_n = size_t(cs.n) * 18 * cs.h * cs.w;
    const size_t col_n = size_t(cs.c) * 9 * g.column_width();
    std::mt19937 rng(0);
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> uniform;
    std::vector<float> h_in(in_n), h_off(off_n), h_mask(off_n / 2);
    for (auto& v : h_in) v = normal(rng);
    for (auto& v : h_off) v = 2.f * normal(rng);
    for (auto& v : h_mask) v = uniform(rng);
    float *in, *off, *msk, *ref, *col;
    CHECK(cudaMalloc(&in, in_n * 4));
    CHECK(cudaMalloc(&off, off_n * 4));
    CHECK(cudaMalloc(&msk, off_n * 2));
    CHECK(cudaMalloc(&ref, col_n * 4));
    CHECK(cudaMalloc(&col, col_n * 4));
    CHECK(cudaMemcpy(in, h_in.data(), in_n * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(off, h_off.data(), off_n * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(msk, h_mask.data(), off_n * 2, cudaMemcpyHostToDevice));
    const float* m = cs.with_mask ? msk : nullptr;
    const int64_t oc = old_chunks(g), cg = g.group_channels();
    const int64_t total_old = oc * 9 * g.column_width();
    auto run_old = [&](float* dst) {
      const int blocks = int(std::min<int64_t>((total_old + 255) / 256, 1 << 16));
      old_kernel<<<blocks, 256>>>(in, off, m, og, oc, dst);
    };
    auto launch_new = [&](int form, int per_thread, float* dst) {
      const int chunks = int(std::max<int64_t>(1, (cg + per_thread - 1) / per_thread));
      dim3 grid(unsigned((g.column_width() + 255) / 256), unsigned(std::min<int64_t>(int64_t(chunks) * 9, 65535)));
      if (form == 0) new_kernel<0, int32_t><<<grid, 256>>>(in, off, m, g, chunks, dst);
      if (form == 1) new_kernel<1, int32_t><<<grid, 256>>>(in, off, m, g, chunks, dst);
      if (form == 2) new_kernel<2, int32_t><<<grid, 256>>>(in, off, m, g, chunks, dst);
      if (form == 3) new_kernel<0, int64_t><<<grid, 256>>>(in, off, m, g, int64_t(chunks), dst);
    };
    run_old(ref);
    CHECK(cudaDeviceSynchronize());
    std::vector<float> h_ref(col_n), h_col(col_n);
    CHECK(cudaMemcpy(h_ref.data(), ref, col_n * 4, cudaMemcpyDeviceToHost));
    cudaEvent_t e0, e1;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    auto time_us = [&](auto&& fn) {
      for (int i = 0; i < 3; ++i) fn();
      float best = 1e30f;
      for (int round = 0; round < 3; ++round) {
        CHECK(cudaEventRecord(e0));
        for (int i = 0; i < 20; ++i) fn();
        CHECK(cudaEventRecord(e1));
        CHECK(cudaEventSynchronize(e1));
        float ms;
        CHECK(cudaEventElapsedTime(&ms, e0, e1));
        best = std::min(best, ms * 1000.f / 20);
      }
      return best;
    };
    const float old_us = time_us([&] { run_old(col); });
    char size[64];
    std::snprintf(size, sizeof size, "%dx%dx%dx%d", cs.n, cs.c, cs.h, cs.w);
    std::printf("| %s | %d | old (1-D, int64) | %lld | %.1f | 1.000 | 0 |\n", size, cs.with_mask, (long long)((cg + oc - 1) / oc), old_us);
    const char* names[] = {"2-D int32, corner pointers", "2-D int32, u32 offsets", "2-D int32, row pointers", "2-D int64, corner pointers"};
    for (int form = 0; form < 4; ++form) {
      for (int per_thread : {8, 16, 32}) {
        if (form == 3 && per_thread != 16) continue;
        CHECK(cudaMemset(col, 0xff, col_n * 4));
        launch_new(form, per_thread, col);
        CHECK(cudaDeviceSynchronize());
        CHECK(cudaMemcpy(h_col.data(), col, col_n * 4, cudaMemcpyDeviceToHost));
        double diff = 0;
        for (size_t i = 0; i < col_n; ++i) diff = std::max(diff, double(std::fabs(h_col[i] - h_ref[i])));
        if (!(diff == diff)) diff = 1e30;
        const float us = time_us([&] { launch_new(form, per_thread, col); });
        std::printf("| %s | %d | %s | %d | %.1f | %.3f | %.3g |\n", size, cs.with_mask, names[form], per_thread, us,
                    us / old_us, diff);
      }
    }
    CHECK(cudaFree(in));
    CHECK(cudaFree(off));
    CHECK(cudaFree(msk));
    CHECK(cudaFree(ref));
    CHECK(cudaFree(col));
  }
  return 0;
}
