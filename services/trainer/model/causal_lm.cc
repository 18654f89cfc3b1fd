// Forward pass of the decoder, written op for op like transformers (rotate-half RoPE, fp32 RMSNorm), with attention
// through scaled_dot_product_attention or transformers' eager op sequence (fp32 softmax, finfo.min masking), so that
// logits match transformers' same implementation to ~1e-6 in fp32.
#include "services/trainer/model/causal_lm.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <limits>
#include <optional>
#include <vector>
#include <set>
#include <sstream>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "services/trainer/model/fused_ops.h"
#include "services/trainer/model/tensor_file.h"

namespace tuneforge {
namespace {

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, " is missing; a model directory needs it"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string JoinFirst(const std::vector<std::string>& names, size_t n) {
  std::vector<std::string> head(names.begin(), names.begin() + std::min(n, names.size()));
  std::string out = absl::StrJoin(head, ", ");
  if (names.size() > n) absl::StrAppend(&out, " and ", names.size() - n, " more");
  return out;
}

bool IsIgnoredCheckpointKey(const std::string& name) {
  // Older checkpoints store the RoPE buffer; HF skips it on load.
  static const std::string kInvFreq = "rotary_emb.inv_freq";
  return name.size() >= kInvFreq.size() && name.compare(name.size() - kInvFreq.size(), kInvFreq.size(), kInvFreq) == 0;
}

// transformers' repeat_kv: [B,kv,T,D] -> [B,kv*repeat,T,D], consecutive query heads sharing a kv head.
at::Tensor RepeatKv(const at::Tensor& x, int64_t repeat) {
  const int64_t batch = x.size(0), kv_heads = x.size(1), length = x.size(2), head_dim = x.size(3);
  return x.unsqueeze(2).expand({batch, kv_heads, repeat, length, head_dim}).reshape({batch, kv_heads * repeat, length,
                                                                                     head_dim});
}

// transformers' torch.finfo(dtype).min, the additive value of a hidden key in eager attention.
double MaskMinValue(at::ScalarType dtype) {
  return dtype == at::kFloat    ? std::numeric_limits<float>::lowest()
         : dtype == at::kDouble ? std::numeric_limits<double>::lowest()
         : dtype == at::kHalf   ? -65504.0
                                : -3.3895313892515355e38;  // bf16 min
}

}  // namespace

absl::StatusOr<AttentionImpl> ParseAttentionImpl(std::string_view name) {
  if (name == "sdpa") return AttentionImpl::kSdpa;
  if (name == "eager") return AttentionImpl::kEager;
  return absl::InvalidArgumentError(
      absl::StrCat("attn_implementation '", std::string(name),
                   "' is not one we have; use sdpa (fused scaled_dot_product_attention kernels, the default) or eager "
                   "(transformers' op-for-op attention)"));
}

const char* AttentionImplName(AttentionImpl impl) { return impl == AttentionImpl::kEager ? "eager" : "sdpa"; }

at::Tensor Projection::Forward(const at::Tensor& x, bool training) const {
  if (!lora_a.defined() || merged) return at::linear(x, weight, bias);
  return ForwardWithLoraDown(
      x, training && lora_dropout > 0 ? DropoutLinear(x, lora_a, lora_dropout) : at::linear(x, lora_a));
}

at::Tensor Projection::ForwardWithLoraDown(const at::Tensor& x, const at::Tensor& down) const {
  const at::Tensor y = at::linear(x, weight, bias);
  // y + scaling * (down @ B^T) as one addmm: the up-projection, its scale and the sum in a single product instead
  // of a product and two passes over the [tokens, out] output (and their backward).
  const std::vector<int64_t> shape = y.sizes().vec();
  return at::addmm(y.reshape({-1, y.size(-1)}), down.reshape({-1, down.size(-1)}), lora_b.t(), /*beta=*/1,
                   /*alpha=*/lora_scaling)
      .view(shape);
}

absl::StatusOr<std::unique_ptr<CausalLM>> CausalLM::Build(const DecoderConfig& config,
                                                          std::map<std::string, at::Tensor> weights,
                                                          const BuildOptions& options) {
  const ModelArchitecture& arch = config.arch;
  const auto expected = ExpectedWeightShapes(arch);
  std::vector<std::string> missing, unexpected, wrong_shape;
  for (const auto& [name, shape] : expected) {
    auto it = weights.find(name);
    if (it == weights.end()) {
      missing.push_back(name);
    } else if (it->second.sizes().vec() != shape) {
      wrong_shape.push_back(absl::StrCat(name, " is [", absl::StrJoin(it->second.sizes().vec(), ","), "], expected [",
                                         absl::StrJoin(shape, ","), "]"));
    }
  }
  for (auto it = weights.begin(); it != weights.end();) {
    if (expected.count(it->first) == 0) {
      if ((arch.tie_word_embeddings && it->first == "lm_head.weight") || IsIgnoredCheckpointKey(it->first)) {
        it = weights.erase(it);
        continue;
      }
      unexpected.push_back(it->first);
    }
    ++it;
  }
  if (!missing.empty() || !unexpected.empty() || !wrong_shape.empty()) {
    std::string msg = absl::StrCat("model weights do not match config.json (family ", arch.family, ")");
    if (!missing.empty()) absl::StrAppend(&msg, "; missing: ", JoinFirst(missing, 8));
    if (!unexpected.empty()) absl::StrAppend(&msg, "; unexpected: ", JoinFirst(unexpected, 8));
    if (!wrong_shape.empty()) absl::StrAppend(&msg, "; wrong shape: ", JoinFirst(wrong_shape, 8));
    absl::StrAppend(&msg, ". Check that the checkpoint belongs to this config.json");
    return absl::InvalidArgumentError(msg);
  }

  std::unique_ptr<CausalLM> model(new CausalLM());
  model->config_ = config;
  model->lora_ = options.lora;
  model->gradient_checkpointing_ = options.gradient_checkpointing;
  model->fused_elementwise_ = options.fused_elementwise;
  model->activation_offload_ = options.activation_offload;
  model->attention_ = options.attention;
  model->per_sequence_attention_ = options.per_sequence_attention;
  for (auto& [name, tensor] : weights) {
    at::Tensor t = tensor.to(options.device, options.dtype).contiguous();
    if (options.train_base) t.set_requires_grad(true);
    model->weights_.emplace(name, std::move(t));
  }

  // LoRA targets, checked against the modules the family has.
  const auto targets = LoraTargetShapes(arch);
  const LoraOptions& lora = options.lora;
  std::set<std::string> lora_modules;
  if (lora.rank > 0) {
    if (lora.target_modules.empty()) return absl::InvalidArgumentError("lora: target_modules is empty");
    for (const std::string& m : lora.target_modules) {
      if (m == "all-linear") {  // PEFT's shorthand: every linear layer of the blocks (never lm_head)
        for (const auto& [n, s] : targets) lora_modules.insert(n);
        continue;
      }
      if (targets.count(m) == 0) {
        std::vector<std::string> names;
        for (const auto& [n, s] : targets) names.push_back(n);
        return absl::InvalidArgumentError(absl::StrCat("lora: target module '", m, "' is not a linear layer of ",
                                                       arch.family, " models; choose from ",
                                                       absl::StrJoin(names, ", ")));
      }
      lora_modules.insert(m);
    }
    model->lora_scaling_ = lora.use_rslora ? lora.alpha / std::sqrt(static_cast<double>(lora.rank))
                                           : lora.alpha / static_cast<double>(lora.rank);
  }
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(lora.seed);

  auto make_projection = [&](const std::string& prefix, const std::string& module) -> const Projection* {
    const std::string name = absl::StrCat(prefix, module);
    Projection p;
    p.weight = model->weights_.at(name + ".weight");
    auto b = model->weights_.find(name + ".bias");
    if (b != model->weights_.end()) p.bias = b->second;
    if (lora_modules.count(module) != 0) {
      const int64_t in = p.weight.size(1), out = p.weight.size(0);
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));  // kaiming_uniform(a=sqrt(5))
      p.lora_a = at::empty({lora.rank, in}, at::TensorOptions().dtype(at::kFloat));
      p.lora_a.uniform_(-bound, bound, gen);
      p.lora_a = p.lora_a.to(options.device, options.dtype);
      p.lora_b = at::zeros({out, lora.rank}, at::TensorOptions().dtype(options.dtype).device(options.device));
      p.lora_a.set_requires_grad(true);
      p.lora_b.set_requires_grad(true);
      p.lora_scaling = model->lora_scaling_;
      p.lora_dropout = lora.dropout;
    }
    auto [it, inserted] = model->projections_.emplace(name, std::move(p));
    return &it->second;
  };

  for (int64_t i = 0; i < arch.num_hidden_layers; ++i) {
    const std::string prefix = absl::StrCat("model.layers.", i, ".");
    Layer layer;
    layer.input_norm = model->weights_.at(prefix + "input_layernorm.weight");
    layer.post_attention_norm = model->weights_.at(prefix + "post_attention_layernorm.weight");
    const std::string attn = prefix + "self_attn.", mlp = prefix + "mlp.";
    if (arch.fused_qkv) {
      layer.qkv = make_projection(attn, "qkv_proj");
    } else {
      layer.q = make_projection(attn, "q_proj");
      layer.k = make_projection(attn, "k_proj");
      layer.v = make_projection(attn, "v_proj");
    }
    layer.o = make_projection(attn, "o_proj");
    if (arch.fused_gate_up) {
      layer.gate_up = make_projection(mlp, "gate_up_proj");
    } else {
      layer.gate = make_projection(mlp, "gate_proj");
      layer.up = make_projection(mlp, "up_proj");
    }
    layer.down = make_projection(mlp, "down_proj");
    model->layers_.push_back(layer);
  }
  model->embed_ = model->weights_.at("model.embed_tokens.weight");
  model->final_norm_ = model->weights_.at("model.norm.weight");
  model->lm_head_ = arch.tie_word_embeddings ? model->embed_ : model->weights_.at("lm_head.weight");
  return model;
}

absl::StatusOr<std::unique_ptr<CausalLM>> CausalLM::Load(const std::string& model_dir, const BuildOptions& options) {
  ASSIGN_OR_RETURN(std::string config_json, ReadText(model_dir + "/config.json"));
  std::string generation_json;
  if (auto g = ReadText(model_dir + "/generation_config.json"); g.ok()) generation_json = *g;
  ASSIGN_OR_RETURN(DecoderConfig config, ParseDecoderConfig(config_json, generation_json, "config.json"));

  ASSIGN_OR_RETURN(auto weights, ReadCheckpointTensors(model_dir));
  return Build(config, std::move(weights), options);
}

at::Tensor CausalLM::RmsNorm(const at::Tensor& x, const at::Tensor& weight) const {
  // transformers' order: normalise in fp32, cast back, then scale (gemma: scale by 1 + w in fp32, cast last). The
  // normalisation is torch's fused rms_norm (one kernel forward and backward instead of pow, mean, add, rsqrt and
  // mul), which gives the same fp32 values as that op sequence.
  const std::vector<int64_t> shape = {x.size(-1)};
  if (config_.norm_weight_offset != 0.0) {
    const at::Tensor h = at::rms_norm(x.to(at::kFloat), shape, std::nullopt, config_.rms_norm_eps);
    return (h * (weight.to(at::kFloat) + config_.norm_weight_offset)).to(x.scalar_type());
  }
  if (x.scalar_type() == at::kFloat && weight.scalar_type() == at::kFloat) {
    return at::rms_norm(x, shape, weight, config_.rms_norm_eps);
  }
  return weight * at::rms_norm(x.to(at::kFloat), shape, std::nullopt, config_.rms_norm_eps).to(x.scalar_type());
}

std::pair<at::Tensor, at::Tensor> CausalLM::RopeCosSin(const at::Tensor& position_ids) const {
  const RopeSettings& rope = config_.rope;
  const int64_t dim = rope.rotary_dim;
  at::Tensor exponents =
      at::arange(0, dim, 2, at::TensorOptions().dtype(at::kLong).device(embed_.device())).to(at::kFloat) / dim;
  at::Tensor base_pow = at::pow(rope.theta, exponents);
  at::Tensor inv_freq;
  double scaling = 1.0;
  switch (rope.kind) {
    case RopeKind::kDefault:
      inv_freq = base_pow.reciprocal();
      break;
    case RopeKind::kLinear:
      inv_freq = base_pow.reciprocal() / rope.factor;
      break;
    case RopeKind::kLlama3: {
      inv_freq = base_pow.reciprocal();
      const double orig = static_cast<double>(rope.original_max_position_embeddings);
      const double low_wavelen = orig / rope.low_freq_factor;
      const double high_wavelen = orig / rope.high_freq_factor;
      at::Tensor wavelen = inv_freq.reciprocal() * (2 * M_PI);
      at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq / rope.factor, inv_freq);
      at::Tensor smooth =
          (wavelen.reciprocal() * orig - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
      at::Tensor smoothed = (1 - smooth) * scaled / rope.factor + smooth * scaled;
      at::Tensor medium = at::logical_not(wavelen < high_wavelen) * at::logical_not(wavelen > low_wavelen);
      inv_freq = at::where(medium, smoothed, scaled);
      break;
    }
    case RopeKind::kLongRope: {
      // The factor list is chosen by the largest position in the whole batch, as HF 4.44 does.
      const int64_t seq_len = position_ids.max().item<int64_t>() + 1;
      const auto& factors = seq_len > rope.original_max_position_embeddings ? rope.long_factor : rope.short_factor;
      at::Tensor ext = at::tensor(std::vector<double>(factors.begin(), factors.end())).to(embed_.device(), at::kFloat);
      inv_freq = (ext * base_pow).reciprocal();
      const double scale = static_cast<double>(rope.max_position_embeddings) /
                           static_cast<double>(rope.original_max_position_embeddings);
      if (scale > 1.0) {
        scaling = std::sqrt(1 + std::log(scale) / std::log(static_cast<double>(rope.original_max_position_embeddings)));
      }
      break;
    }
  }
  at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv_freq.view({1, 1, -1});
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  at::Tensor cos = emb.cos(), sin = emb.sin();
  if (scaling != 1.0) {
    cos = cos * scaling;
    sin = sin * scaling;
  }
  const at::ScalarType dtype = embed_.scalar_type();
  return {cos.to(dtype).unsqueeze(1), sin.to(dtype).unsqueeze(1)};  // [B,1,T,D]
}

bool AttendsPerSequence(const DecoderConfig& config, AttentionImpl attention, int64_t max_seq_len) {
  return attention == AttentionImpl::kSdpa && (config.sliding_window <= 0 || config.sliding_window >= max_seq_len);
}

bool CausalLM::AttendsPerSequence(int64_t max_seq_len) const {
  return per_sequence_attention_ && tuneforge::AttendsPerSequence(config_, attention_, max_seq_len);
}

const char* AttentionLayout::Describe() const {
  if (tokens.defined()) return "varlen";
  if (sequences.defined()) return "per-sequence";
  return mask.defined() ? "mask" : "causal";
}

namespace {

// Set once the variable-length flash kernel has failed in this process (a torch build without it): per-sequence
// attention then runs sequence by sequence through scaled_dot_product_attention instead.
std::atomic<bool> varlen_unavailable{false};

}  // namespace

AttentionLayout CausalLM::Layout(const at::Tensor& attention_mask, int64_t batch, int64_t length) const {
  AttentionLayout layout;
  // A mask of all ones changes nothing: plain causal attention (unless a window needs the mask).
  const bool segments = attention_mask.defined() && !(attention_mask == 1).all().item<bool>();
  if (segments && PlanSequences(attention_mask, batch, length, layout)) return layout;
  layout.mask = AttentionMask(segments ? attention_mask : at::Tensor(), batch, length);
  return layout;
}

bool CausalLM::PlanSequences(const at::Tensor& attention_mask, int64_t batch, int64_t length,
                             AttentionLayout& layout) const {
  if (attention_ != AttentionImpl::kSdpa || !per_sequence_attention_) return false;
  const at::Tensor ids = attention_mask.to(at::kCPU, at::kLong).contiguous();
  const int64_t* cells = ids.data_ptr<int64_t>();
  const int64_t window = config_.sliding_window;
  std::vector<int64_t> spans;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t* row = cells + b * length;
    int64_t t = 0, last_id = 0;
    while (t < length && row[t] != 0) {
      // Ids must rise from run to run: a repeated id would join two runs into one segment under the mask's rule.
      if (row[t] <= last_id) return false;
      int64_t end = t + 1;
      while (end < length && row[end] == row[t]) ++end;
      if (window > 0 && end - t > window) return false;  // the window hides keys inside the sequence
      spans.insert(spans.end(), {b, t, end - t});
      last_id = row[t];
      t = end;
    }
    for (; t < length; ++t) {
      if (row[t] != 0) return false;  // padding before a token: left padding
    }
  }
  const int64_t n = static_cast<int64_t>(spans.size() / 3);
  layout.sequences = at::tensor(spans, at::TensorOptions().dtype(at::kLong)).view({n, 3});
  const ModelArchitecture& arch = config_.arch;
  const at::ScalarType dtype = embed_.scalar_type();
  if (embed_.is_cuda() && (dtype == at::kHalf || dtype == at::kBFloat16) && arch.head_dim % 8 == 0 &&
      arch.head_dim <= 256 && n > 0 && !varlen_unavailable.load()) {
    std::vector<int64_t> tokens;
    std::vector<int32_t> cumulative = {0};
    for (int64_t i = 0; i < n; ++i) {
      const int64_t row = spans[3 * i], start = spans[3 * i + 1], len = spans[3 * i + 2];
      for (int64_t t = 0; t < len; ++t) tokens.push_back(row * length + start + t);
      cumulative.push_back(static_cast<int32_t>(cumulative.back() + len));
      layout.max_length = std::max(layout.max_length, len);
    }
    layout.tokens = at::tensor(tokens, at::TensorOptions().dtype(at::kLong)).to(embed_.device());
    layout.cu_seqlens = at::tensor(cumulative, at::TensorOptions().dtype(at::kInt)).to(embed_.device());
  }
  return true;
}

at::Tensor CausalLM::PerSequenceAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const AttentionLayout& layout) const {
  const int64_t batch = q.size(0), heads = q.size(1), length = q.size(2), head_dim = q.size(3);
  if (layout.tokens.defined() && !varlen_unavailable.load()) {
    // Flash attention's variable-length form: the sequences' tokens gathered into [N, heads, D] (kv heads as they
    // are: the kernel groups query heads itself), one causal launch over all sequences, scattered back.
    auto gather = [&](const at::Tensor& t) {
      return t.transpose(1, 2).reshape({batch * length, t.size(1), head_dim}).index_select(0, layout.tokens);
    };
    try {
      const auto result =
          at::_flash_attention_forward(gather(q), gather(k), gather(v), layout.cu_seqlens, layout.cu_seqlens,
                                       layout.max_length, layout.max_length, /*dropout_p=*/0.0, /*is_causal=*/true,
                                       /*return_debug_mask=*/false);
      return at::zeros({batch * length, heads, head_dim}, q.options())
          .index_copy(0, layout.tokens, std::get<0>(result))
          .view({batch, length, heads * head_dim});
    } catch (const c10::Error&) {
      varlen_unavailable.store(true);  // and take the per-sequence calls below from now on
    }
  }
  // Sequence by sequence: each a causal scaled_dot_product_attention over its own tokens only (the flash kernel
  // without a mask), so a packed row costs the sum of its sequences' squared lengths instead of the row's.
  const auto spans = layout.sequences.accessor<int64_t, 2>();
  const bool gqa = heads != k.size(1);
  std::vector<at::Tensor> rows, parts;
  int64_t row = 0, covered = 0;
  auto finish_row = [&]() {
    if (covered < length) parts.push_back(at::zeros({1, heads, length - covered, head_dim}, q.options()));
    rows.push_back(parts.size() == 1 ? parts.front() : at::cat(parts, 2));
    parts.clear();
    covered = 0;
    ++row;
  };
  for (int64_t i = 0; i < spans.size(0); ++i) {
    while (spans[i][0] > row) finish_row();
    const int64_t start = spans[i][1], len = spans[i][2];
    auto slice = [&](const at::Tensor& t) { return t.narrow(0, row, 1).narrow(2, start, len); };
    parts.push_back(at::scaled_dot_product_attention(slice(q), slice(k), slice(v), std::nullopt, /*dropout_p=*/0.0,
                                                     /*is_causal=*/true, /*scale=*/std::nullopt,
                                                     /*enable_gqa=*/gqa));
    covered = start + len;
  }
  while (row < batch) finish_row();
  return at::cat(rows, 0).transpose(1, 2).reshape({batch, length, heads * head_dim});
}

at::Tensor CausalLM::AttentionMask(const at::Tensor& attention_mask, int64_t batch, int64_t length) const {
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(embed_.device());
  const bool window = config_.sliding_window > 0 && config_.sliding_window < length;
  // 0 marks padding keys; other values are segment ids (packed examples): a token sees only its own segment.
  // A mask of all ones changes nothing, so it is dropped here and the kernels may take the causal-only path.
  const bool segments = attention_mask.defined() && !(attention_mask == 1).all().item<bool>();
  if (attention_ == AttentionImpl::kSdpa && !window && !segments) return at::Tensor();

  at::Tensor query = at::arange(length, long_opts).view({-1, 1});
  at::Tensor key = at::arange(length, long_opts).view({1, -1});
  at::Tensor hidden = key > query;  // [T,T]
  if (config_.sliding_window > 0) hidden = at::logical_or(hidden, key <= query - config_.sliding_window);
  hidden = hidden.view({1, 1, length, length});
  if (segments) {
    const at::Tensor ids = attention_mask.to(at::kLong);
    const at::Tensor key_segment = ids.view({batch, 1, 1, length});
    const at::Tensor query_segment = ids.view({batch, 1, length, 1});
    hidden = at::logical_or(hidden, at::logical_or(key_segment == 0, at::logical_and(query_segment != 0,
                                                                                     query_segment != key_segment)));
  }
  hidden = hidden.expand({batch, 1, length, length});
  if (attention_ == AttentionImpl::kSdpa) {
    // A left-padding query sees no key at all. Some kernels (and torch versions) answer NaN for such a row, whose
    // gradient would poison the batch, so every token may at least see itself; a real token always does anyway.
    const at::Tensor self = (key == query).view({1, 1, length, length});
    return at::logical_not(hidden).logical_or(self).contiguous();
  }
  return at::zeros({batch, 1, length, length}, at::TensorOptions().dtype(embed_.scalar_type()).device(embed_.device()))
      .masked_fill(hidden, MaskMinValue(embed_.scalar_type()));
}

at::Tensor CausalLM::CachedAttentionMask(const at::Tensor& attention_mask, int64_t batch, int64_t past,
                                         int64_t length) const {
  const auto long_opts = at::TensorOptions().dtype(at::kLong).device(embed_.device());
  const int64_t total = past + length;
  // The window hides a key from some query only once there are more keys than it spans.
  const bool window = config_.sliding_window > 0 && config_.sliding_window < total;
  const bool padding = attention_mask.defined() && !(attention_mask != 0).all().item<bool>();
  // Without padding or window, the prompt (nothing cached) is plain causal attention and one new token sees every key.
  if (attention_ == AttentionImpl::kSdpa && !window && !padding && (past == 0 || length == 1)) return at::Tensor();

  at::Tensor query = at::arange(past, total, long_opts).view({-1, 1});  // cache slots of the queries
  at::Tensor key = at::arange(total, long_opts).view({1, -1});
  at::Tensor hidden = key > query;  // [T,S]
  if (config_.sliding_window > 0) hidden = at::logical_or(hidden, key <= query - config_.sliding_window);
  hidden = hidden.view({1, 1, length, total});
  if (padding) hidden = at::logical_or(hidden, (attention_mask == 0).view({batch, 1, 1, total}));
  hidden = hidden.expand({batch, 1, length, total});
  if (attention_ == AttentionImpl::kSdpa) {
    // As in AttentionMask: a left-padding query of the prompt sees at least itself, so no kernel answers NaN.
    const at::Tensor self = (key == query).view({1, 1, length, total});
    return at::logical_not(hidden).logical_or(self).contiguous();
  }
  return at::zeros({batch, 1, length, total}, at::TensorOptions().dtype(embed_.scalar_type()).device(embed_.device()))
      .masked_fill(hidden, MaskMinValue(embed_.scalar_type()));
}

at::Tensor CausalLM::Attention(const Layer& layer, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                               const AttentionLayout& layout, KvCache* cache, size_t index) const {
  const ModelArchitecture& arch = config_.arch;
  const int64_t batch = x.size(0), length = x.size(1), head_dim = arch.head_dim;
  const int64_t heads = arch.num_attention_heads, kv_heads = arch.num_key_value_heads;
  at::Tensor q, k, v;
  if (layer.qkv != nullptr) {
    // split (not slice): its backward concatenates the three gradients in one pass, where each slice's would be a
    // zero-filled tensor of the whole product's size, summed.
    const int64_t q_size = heads * head_dim, kv_size = kv_heads * head_dim;
    const std::vector<at::Tensor> parts =
        at::split_with_sizes(layer.qkv->Forward(x, training_), {q_size, kv_size, kv_size}, -1);
    q = parts[0];
    k = parts[1];
    v = parts[2];
  } else {
    q = layer.q->Forward(x, training_);
    k = layer.k->Forward(x, training_);
    v = layer.v->Forward(x, training_);
  }
  q = q.view({batch, length, heads, head_dim}).transpose(1, 2);
  k = k.view({batch, length, kv_heads, head_dim}).transpose(1, 2);
  v = v.view({batch, length, kv_heads, head_dim}).transpose(1, 2);
  if (fused_elementwise_) {
    std::tie(q, k) = ApplyRope(q, k, cos, sin);
  } else {
    q = ApplyRopeReference(q, cos, sin);
    k = ApplyRopeReference(k, cos, sin);
  }
  if (layout.per_sequence() && cache == nullptr) {
    return layer.o->Forward(PerSequenceAttention(q, k, v, layout), training_);
  }
  const at::Tensor& mask = layout.mask;
  int64_t past = 0;
  if (cache != nullptr) {
    past = cache->length_;
    cache->keys_[index].narrow(2, past, length).copy_(k);
    cache->values_[index].narrow(2, past, length).copy_(v);
    k = cache->keys_[index].narrow(2, 0, past + length);
    v = cache->values_[index].narrow(2, 0, past + length);
  }
  const int64_t repeat = heads / kv_heads;
  at::Tensor out;
  if (attention_ == AttentionImpl::kSdpa) {
    // Without a mask the flash kernel takes the kv heads as they are (enable_gqa); the memory-efficient kernel,
    // which masks need, does not take grouped heads, so there they are repeated as in eager.
    const bool gqa = repeat > 1 && !mask.defined();
    if (repeat > 1 && !gqa) {
      k = RepeatKv(k, repeat);
      v = RepeatKv(v, repeat);
    }
    out = at::scaled_dot_product_attention(q, k, v, mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt,
                                           // After cached tokens no mask means one query that sees every key.
                                           /*dropout_p=*/0.0, /*is_causal=*/!mask.defined() && past == 0,
                                           /*scale=*/std::nullopt,
                                           /*enable_gqa=*/gqa);
  } else {
    if (repeat > 1) {
      k = RepeatKv(k, repeat);
      v = RepeatKv(v, repeat);
    }
    at::Tensor scores = at::matmul(q, k.transpose(2, 3)) / std::sqrt(static_cast<double>(head_dim));
    scores = scores + mask;
    at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
    out = at::matmul(probs, v);
  }
  out = out.transpose(1, 2).contiguous().reshape({batch, length, heads * head_dim});
  return layer.o->Forward(out, training_);
}

at::Tensor CausalLM::Mlp(const Layer& layer, const at::Tensor& x) const {
  at::Tensor gate, up;
  if (layer.gate_up != nullptr) {
    const std::vector<at::Tensor> parts = layer.gate_up->Forward(x, training_).chunk(2, -1);  // split, as qkv
    gate = parts[0];
    up = parts[1];
  } else {
    gate = layer.gate->Forward(x, training_);
    up = layer.up->Forward(x, training_);
  }
  const Projection& down = *layer.down;
  if (!fused_elementwise_) return down.Forward(GatedActivationReference(gate, up, config_.activation), training_);
  if (down.lora_a.defined() && !down.merged && !(training_ && down.lora_dropout > 0)) {
    // The activation and down_proj's LoRA down-projection in one node, which does not keep the activation's output.
    const auto [h, lora_down] = GatedActivationLoraDown(gate, up, down.lora_a, config_.activation);
    return down.ForwardWithLoraDown(h, lora_down);
  }
  return down.Forward(GatedActivation(gate, up, config_.activation), training_);
}

namespace {

// Reentrant activation checkpointing of one decoder layer, as torch.utils.checkpoint(use_reentrant=True): the
// forward runs without a graph and keeps the layer input and the RNG state; backward replays the layer with
// grad (same dropout masks) and back-propagates through it, which also accumulates the LoRA gradients. The layout
// travels as a pointer (to the caller's, alive for the forward; saved_data keeps its tensors for the backward): an
// undefined tensor among apply()'s tensor arguments fails in autograd ("tensor does not have a device"), and plain
// causal attention has no mask. With activation offload the input is kept as a host copy instead and brought back to
// the layer's device for the backward.
class LayerCheckpoint : public torch::autograd::Function<LayerCheckpoint> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& h, const at::Tensor& cos,
                            const at::Tensor& sin, int64_t layout_ptr, int64_t model, int64_t index) {
    const AttentionLayout& layout = *reinterpret_cast<const AttentionLayout*>(layout_ptr);
    at::Generator generator = at::globalContext().defaultGenerator(h.device());
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      ctx->saved_data["rng"] = generator.get_state();
    }
    ctx->saved_data["model"] = model;
    ctx->saved_data["index"] = index;
    ctx->saved_data["cos"] = cos;
    ctx->saved_data["sin"] = sin;
    ctx->saved_data["mask"] = layout.mask;
    ctx->saved_data["sequences"] = layout.sequences;
    ctx->saved_data["tokens"] = layout.tokens;
    ctx->saved_data["cu_seqlens"] = layout.cu_seqlens;
    ctx->saved_data["max_length"] = layout.max_length;
    const auto* lm = reinterpret_cast<const CausalLM*>(model);
    if (lm->activation_offload()) {
      // Pinned host memory lets the copy run without blocking on CUDA; the stream orders it before the backward's
      // copy back, and torch's host allocator keeps the block until the copies that use it are done.
      at::Tensor host = at::empty(h.sizes(), h.options().device(at::kCPU).pinned_memory(h.is_cuda()));
      host.copy_(h, /*non_blocking=*/h.is_cuda());
      ctx->saved_data["host"] = host;
    } else {
      ctx->save_for_backward({h});
    }
    return lm->DecoderLayer(static_cast<size_t>(index), h, cos, sin, layout);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto* model = reinterpret_cast<const CausalLM*>(ctx->saved_data["model"].toInt());
    const at::Tensor cos = ctx->saved_data["cos"].toTensor();
    at::Tensor h = model->activation_offload()
                       ? ctx->saved_data["host"].toTensor().to(cos.device(), /*non_blocking=*/cos.is_cuda())
                       : ctx->get_saved_variables()[0].detach();
    h.requires_grad_(true);
    AttentionLayout layout;
    layout.mask = ctx->saved_data["mask"].toTensor();
    layout.sequences = ctx->saved_data["sequences"].toTensor();
    layout.tokens = ctx->saved_data["tokens"].toTensor();
    layout.cu_seqlens = ctx->saved_data["cu_seqlens"].toTensor();
    layout.max_length = ctx->saved_data["max_length"].toInt();
    at::Generator generator = at::globalContext().defaultGenerator(h.device());
    at::Tensor rng_now;
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      rng_now = generator.get_state();
      generator.set_state(ctx->saved_data["rng"].toTensor());
    }
    at::Tensor out;
    {
      at::AutoGradMode grad(true);
      out = model->DecoderLayer(static_cast<size_t>(ctx->saved_data["index"].toInt()), h, cos,
                                ctx->saved_data["sin"].toTensor(), layout);
    }
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_state(rng_now);
    }
    torch::autograd::backward({out}, {grad_outputs[0]});
    return {h.grad(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor CausalLM::DecoderLayer(size_t index, const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin,
                                  const AttentionLayout& layout, KvCache* cache) const {
  const Layer& layer = layers_[index];
  at::Tensor out = h + Attention(layer, RmsNorm(h, layer.input_norm), cos, sin, layout, cache, index);
  return out + Mlp(layer, RmsNorm(out, layer.post_attention_norm));
}

at::Tensor CausalLM::Forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                             const at::Tensor& position_ids) const {
  return at::linear(ForwardHidden(input_ids, attention_mask, position_ids), lm_head_).to(at::kFloat);
}

at::Tensor CausalLM::ForwardHidden(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                   const at::Tensor& position_ids) const {
  const int64_t batch = input_ids.size(0), length = input_ids.size(1);
  at::Tensor h = at::embedding(embed_, input_ids);
  if (config_.scale_embeddings) {
    h = h * at::scalar_tensor(std::sqrt(static_cast<double>(config_.arch.hidden_size)), h.options());
  }
  at::Tensor positions =
      position_ids.defined()
          ? position_ids
          : at::arange(length, at::TensorOptions().dtype(at::kLong).device(embed_.device())).unsqueeze(0);
  auto [cos, sin] = RopeCosSin(positions);
  const AttentionLayout layout = Layout(attention_mask, batch, length);
  const bool checkpoint = gradient_checkpointing_ && training_ && at::GradMode::is_enabled();
  // A checkpointed layer whose input needs no grad would never run its backward (frozen embeddings under LoRA),
  // so its input is made to require grad, as transformers' enable_input_require_grads does.
  if (checkpoint && !h.requires_grad()) h = h.detach().requires_grad_(true);
  for (size_t i = 0; i < layers_.size(); ++i) {
    h = checkpoint ? LayerCheckpoint::apply(h, cos, sin, reinterpret_cast<int64_t>(&layout),
                                            reinterpret_cast<int64_t>(this), static_cast<int64_t>(i))
                   : DecoderLayer(i, h, cos, sin, layout);
  }
  return RmsNorm(h, final_norm_);
}

void KvCache::Clear() {
  keys_.clear();
  values_.clear();
  length_ = 0;
  max_position_ = -1;
}

at::Tensor KvCache::keys(size_t layer) const { return keys_.at(layer).narrow(2, 0, length_); }
at::Tensor KvCache::values(size_t layer) const { return values_.at(layer).narrow(2, 0, length_); }

at::Tensor CausalLM::ForwardWithCache(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                      const at::Tensor& position_ids, KvCache& cache, int64_t logits_to_keep) const {
  at::NoGradGuard no_grad;
  const ModelArchitecture& arch = config_.arch;
  const int64_t batch = input_ids.size(0), length = input_ids.size(1), past = cache.length_;
  TORCH_CHECK(cache.empty() || cache.keys_.front().size(0) == batch, "KvCache holds ", cache.keys_.front().size(0),
              " rows, the input ", batch);
  TORCH_CHECK(!attention_mask.defined() || attention_mask.size(1) == past + length, "attention_mask has ",
              attention_mask.size(1), " columns; it must cover the ", past, " cached and ", length, " new tokens");
  // Room for the new tokens in every layer: the reserved size at first, then doubling, so that a step copies its
  // keys and values once instead of concatenating the whole cache.
  const int64_t capacity = cache.keys_.empty() ? 0 : cache.keys_.front().size(2);
  if (past + length > capacity) {
    const int64_t grown = std::max({past + length, cache.reserved_, 2 * capacity});
    const auto opts = at::TensorOptions().dtype(embed_.scalar_type()).device(embed_.device());
    cache.keys_.resize(layers_.size());
    cache.values_.resize(layers_.size());
    for (size_t i = 0; i < layers_.size(); ++i) {
      for (at::Tensor* store : {&cache.keys_[i], &cache.values_[i]}) {
        at::Tensor bigger = at::empty({batch, arch.num_key_value_heads, grown, arch.head_dim}, opts);
        if (past > 0) bigger.narrow(2, 0, past).copy_(store->narrow(2, 0, past));
        *store = bigger;
      }
    }
  }

  at::Tensor h = at::embedding(embed_, input_ids);
  if (config_.scale_embeddings) {
    h = h * at::scalar_tensor(std::sqrt(static_cast<double>(arch.hidden_size)), h.options());
  }
  at::Tensor positions =
      position_ids.defined()
          ? position_ids
          : at::arange(past, past + length, at::TensorOptions().dtype(at::kLong).device(embed_.device())).unsqueeze(0);
  auto [cos, sin] = RopeCosSin(positions);
  AttentionLayout layout;
  layout.mask = CachedAttentionMask(attention_mask, batch, past, length);
  for (size_t i = 0; i < layers_.size(); ++i) h = DecoderLayer(i, h, cos, sin, layout, &cache);
  cache.length_ += length;
  cache.max_position_ = std::max(cache.max_position_, positions.max().item<int64_t>());
  if (logits_to_keep > 0 && logits_to_keep < length) h = h.narrow(1, length - logits_to_keep, logits_to_keep);
  h = RmsNorm(h, final_norm_);
  return at::linear(h, lm_head_).to(at::kFloat);
}

bool CausalLM::CacheValidUpTo(const KvCache& cache, int64_t max_position) const {
  if (config_.rope.kind != RopeKind::kLongRope || cache.empty()) return true;
  const int64_t original = config_.rope.original_max_position_embeddings;
  return (cache.max_position() + 1 > original) == (max_position + 1 > original);
}

std::vector<int64_t> CausalLM::GreedyGenerate(const std::vector<int64_t>& prompt, int64_t new_tokens) const {
  at::NoGradGuard no_grad;
  std::vector<int64_t> ids = prompt;
  std::vector<int64_t> out;
  for (int64_t step = 0; step < new_tokens; ++step) {
    at::Tensor input = at::tensor(ids, at::TensorOptions().dtype(at::kLong)).view({1, -1}).to(embed_.device());
    at::Tensor logits = Forward(input);
    const int64_t next = logits.select(1, logits.size(1) - 1).argmax(-1).item<int64_t>();
    ids.push_back(next);
    out.push_back(next);
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> CausalLM::LoraParameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, p] : projections_) {
    if (!p.lora_a.defined()) continue;
    out.emplace_back(absl::StrCat("base_model.model.", name, ".lora_A.weight"), p.lora_a);
    out.emplace_back(absl::StrCat("base_model.model.", name, ".lora_B.weight"), p.lora_b);
  }
  return out;
}

std::vector<at::Tensor> CausalLM::TrainableParameters() const {
  std::vector<at::Tensor> out;
  for (const auto& [name, t] : weights_) {
    if (t.requires_grad()) out.push_back(t);
  }
  for (const auto& [name, t] : LoraParameters()) out.push_back(t);
  return out;
}

void CausalLM::MergeLora() {
  at::NoGradGuard no_grad;
  for (auto& [name, p] : projections_) {
    if (!p.lora_a.defined() || p.merged) continue;
    p.weight.add_(at::matmul(p.lora_b, p.lora_a) * p.lora_scaling);
    p.merged = true;
  }
}

void CausalLM::UnmergeLora() {
  at::NoGradGuard no_grad;
  for (auto& [name, p] : projections_) {
    if (!p.lora_a.defined() || !p.merged) continue;
    p.weight.sub_(at::matmul(p.lora_b, p.lora_a) * p.lora_scaling);
    p.merged = false;
  }
}

int64_t CausalLM::ParameterCount() const {
  int64_t n = 0;
  for (const auto& [name, t] : weights_) n += t.numel();
  for (const auto& [name, t] : LoraParameters()) n += t.numel();
  return n;
}

int64_t CausalLM::TrainableParameterCount() const {
  int64_t n = 0;
  for (const at::Tensor& t : TrainableParameters()) n += t.numel();
  return n;
}

}  // namespace tuneforge
