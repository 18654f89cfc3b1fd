// Written for the compiler's vectorizer: fixed-width lane arrays instead of reductions it would have to reorder, an
// exponential without library calls or branches, blocks converted to fp32 before any arithmetic, and one clone of
// each row function per instruction set (AVX-512, AVX2, baseline), picked at load time on x86-64.
#include "services/trainer/train/cross_entropy_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define TUNEFORGE_ROW_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TUNEFORGE_ROW_CLONES
#endif
#if defined(__GNUC__)
#define TUNEFORGE_INLINE inline __attribute__((always_inline))  // compiled into each clone, for its instruction set
#else
#define TUNEFORGE_INLINE inline
#endif

namespace tuneforge {

namespace {

constexpr int kLanes = 16;

TUNEFORGE_INLINE float Bf16ToFloat(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

TUNEFORGE_INLINE uint16_t FloatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;  // nearest, ties to even
  const bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
  return static_cast<uint16_t>(nan ? 0x7FC0u : rounded);
}

// e^x for x <= 0 (x - max or x - logsumexp), within about 2 ulp: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor
// polynomial to r^7, 2^n put into the exponent bits. Below -87.3 (under FLT_MIN) it is 0; a NaN stays NaN.
TUNEFORGE_INLINE float ExpNonPositive(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;
  constexpr float kLn2Lo = 1.42860682030941723212e-6f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  constexpr float kLowest = -87.3f;
  const float clamped = x < kLowest ? kLowest : x;
  const float n = (clamped * kLog2e + kRound) - kRound;
  const float r = (clamped - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float exponent = n == n ? n : 0.0f;  // a NaN's conversion to int would be undefined; p is NaN anyway
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(exponent) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < kLowest ? 0.0f : p * scale;
}

// Each pass goes over the row in blocks of kBlock logits as fp32: a float row in place, a bf16 row converted into a
// buffer first (and its gradient converted back), so that every inner loop is plain float arithmetic.
constexpr int64_t kBlock = 512;

struct FloatRow {
  float* data;
  TUNEFORGE_INLINE const float* Read(int64_t start, int64_t, float*) const { return data + start; }
  TUNEFORGE_INLINE float* Target(int64_t start, float*) const { return data + start; }
  TUNEFORGE_INLINE void Write(int64_t, int64_t, const float*) const {}
  TUNEFORGE_INLINE float At(int64_t i) const { return data[i]; }
};

struct Bf16Row {
  uint16_t* data;
  TUNEFORGE_INLINE const float* Read(int64_t start, int64_t n, float* buffer) const {
    for (int64_t k = 0; k < n; ++k) buffer[k] = Bf16ToFloat(data[start + k]);
    return buffer;
  }
  TUNEFORGE_INLINE float* Target(int64_t, float* buffer) const { return buffer; }
  TUNEFORGE_INLINE void Write(int64_t start, int64_t n, const float* buffer) const {
    for (int64_t k = 0; k < n; ++k) data[start + k] = FloatToBf16(buffer[k]);
  }
  TUNEFORGE_INLINE float At(int64_t i) const { return Bf16ToFloat(data[i]); }
};

TUNEFORGE_INLINE void MaxInto(const float* x, int64_t n, float* lanes) {
  const int64_t whole = n / kLanes * kLanes;
  for (int64_t i = 0; i < whole; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] = lanes[j] > x[i + j] ? lanes[j] : x[i + j];
  }
  for (int64_t i = whole; i < n; ++i) lanes[0] = lanes[0] > x[i] ? lanes[0] : x[i];
}

TUNEFORGE_INLINE void ExpSumInto(const float* x, int64_t n, float shift, float* lanes) {
  const int64_t whole = n / kLanes * kLanes;
  for (int64_t i = 0; i < whole; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += ExpNonPositive(x[i + j] - shift);
  }
  for (int64_t i = whole; i < n; ++i) lanes[0] += ExpNonPositive(x[i] - shift);
}

template <typename Row>
TUNEFORGE_INLINE double CrossEntropyRowImpl(const Row& row, int64_t vocab, int64_t target, float grad_scale,
                                            bool write_grad) {
  float buffer[kBlock];
  float lanes[kLanes];
  for (float& l : lanes) l = -std::numeric_limits<float>::infinity();
  for (int64_t start = 0; start < vocab; start += kBlock) {
    const int64_t n = std::min(kBlock, vocab - start);
    MaxInto(row.Read(start, n, buffer), n, lanes);
  }
  float max = -std::numeric_limits<float>::infinity();
  for (float l : lanes) max = max > l ? max : l;

  for (float& l : lanes) l = 0.0f;
  for (int64_t start = 0; start < vocab; start += kBlock) {
    const int64_t n = std::min(kBlock, vocab - start);
    ExpSumInto(row.Read(start, n, buffer), n, max, lanes);
  }
  double sum = 0;
  for (float l : lanes) sum += l;

  const float lse = max + static_cast<float>(std::log(sum));
  const float picked = row.At(target);
  const double loss = std::isfinite(max) ? static_cast<double>(lse) - static_cast<double>(picked)
                                         : std::numeric_limits<double>::quiet_NaN();
  if (!write_grad) return loss;
  for (int64_t start = 0; start < vocab; start += kBlock) {
    const int64_t n = std::min(kBlock, vocab - start);
    const float* x = row.Read(start, n, buffer);
    float* out = row.Target(start, buffer);
    for (int64_t k = 0; k < n; ++k) out[k] = ExpNonPositive(x[k] - lse) * grad_scale;
    if (target >= start && target < start + n) out[target - start] = (ExpNonPositive(picked - lse) - 1.0f) * grad_scale;
    row.Write(start, n, out);
  }
  return loss;
}

}  // namespace

TUNEFORGE_ROW_CLONES
double CrossEntropyRow(float* row, int64_t vocab, int64_t target, float grad_scale, bool write_grad) {
  return CrossEntropyRowImpl(FloatRow{row}, vocab, target, grad_scale, write_grad);
}

TUNEFORGE_ROW_CLONES
double CrossEntropyRowBf16(uint16_t* row, int64_t vocab, int64_t target, float grad_scale, bool write_grad) {
  return CrossEntropyRowImpl(Bf16Row{row}, vocab, target, grad_scale, write_grad);
}

}  // namespace tuneforge
