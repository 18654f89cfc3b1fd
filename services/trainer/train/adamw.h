// AdamW as torch.optim.AdamW (decoupled weight decay), stepping every parameter of a device and dtype with torch's
// fused AdamW kernel (_fused_adamw_, one launch for all of them), or with 8-bit states: each moment kept as one byte
// per entry (a code of a 256-value dynamic map) and an fp32 scale per block of 256 entries, 4x less state memory.
#ifndef TUNEFORGE_SERVICES_TRAINER_TRAIN_ADAMW_H_
#define TUNEFORGE_SERVICES_TRAINER_TRAIN_ADAMW_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tuneforge {

// The optimizer's state of one parameter, for checkpoints: torch.optim.AdamW's "step", "exp_avg" and
// "exp_avg_sq". Before the parameter's first update step is 0 and the tensors are undefined.
struct AdamWParamState {
  int64_t step = 0;
  at::Tensor exp_avg;     // same shape as the parameter
  at::Tensor exp_avg_sq;  // same shape as the parameter
};

enum class AdamWStates {
  kFull,   // moments in the parameter's dtype, as torch.optim.AdamW
  kEightBit,  // moments as 8-bit codes with a scale per block of 256 (bitsandbytes' and torchao's AdamW8bit scheme)
};

// "adamw" -> kFull, "adamw_8bit" -> kEightBit; INVALID_ARGUMENT naming both otherwise.
absl::StatusOr<AdamWStates> ParseAdamWStates(std::string_view name);

struct AdamWSettings {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // torch.optim.AdamW's default; libtorch's C++ default differs, so always set
  AdamWStates states = AdamWStates::kFull;
};

// The 8-bit moments' encoding, exposed for tests: x -> uint8 codes in whole blocks of 256 entries (the last padded
// with zeros) and each block's fp32 absmax (1 for an all-zero block). An entry's code is the index of the nearest
// value of the signed (first moment) or unsigned (second moment) dynamic map: the number of the map's midpoints
// below entry / absmax, as at::bucketize against EightBitMidpoints counts them.
std::pair<at::Tensor, at::Tensor> EncodeEightBit(const at::Tensor& x, bool is_signed);
at::Tensor EightBitMidpoints(bool is_signed);  // [255], ascending

class AdamWOptimizer {
 public:
  AdamWOptimizer(std::vector<at::Tensor> parameters, const AdamWSettings& settings);
  ~AdamWOptimizer();
  AdamWOptimizer(const AdamWOptimizer&) = delete;
  AdamWOptimizer& operator=(const AdamWOptimizer&) = delete;

  // Updates every parameter that has a gradient (others keep their state), as torch.optim.AdamW.step().
  void Step();
  void ZeroGrad();                    // gradients to undefined (set_to_none)
  void SetLearningRate(double lr);  // e.g. from a schedule, before Step()

  // Bytes the moments take now (0 before the first step).
  int64_t StateBytes() const;

  // One entry per parameter, in the order given to the constructor; the tensors are copies (8-bit states decoded to
  // fp32).
  std::vector<AdamWParamState> ExportState() const;
  // Restores what ExportState gave (tensors are copied and moved to each parameter's device and dtype; 8-bit states
  // encoded, which gives back the same codes), so the next Step() is the one the exporting optimizer would have
  // taken. INVALID_ARGUMENT for a wrong count or a shape that does not match its parameter; entries with step 0
  // clear that parameter's state.
  absl::Status ImportState(const std::vector<AdamWParamState>& state);

 private:
  struct Slot {
    at::Tensor param;
    int64_t step = 0;
    at::Tensor step_tensor;             // float32 scalar on the parameter's device, for the fused kernel
    at::Tensor exp_avg, exp_avg_sq;     // kFull: the moments; kEightBit: uint8 codes, flat, padded to whole blocks
    at::Tensor avg_scale, avg_sq_scale;  // kEightBit: fp32 absmax per block
  };
  void InitSlot(Slot& slot, const at::Tensor& exp_avg, const at::Tensor& exp_avg_sq) const;
  void StepFull(std::vector<Slot*>& slots);
  void StepEightBit(std::vector<Slot*>& slots);  // one device, dtype and step count

  AdamWSettings settings_;
  std::vector<Slot> slots_;
};

}  // namespace tuneforge

#endif  // TUNEFORGE_SERVICES_TRAINER_TRAIN_ADAMW_H_
