__global__ void add_one(float* x, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] += 1.f; }
extern "C" int launch(float* x, int n) { add_one<<<(n + 127) / 128, 128>>>(x, n); return (int)cudaGetLastError(); }
