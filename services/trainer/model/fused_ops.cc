// Rotary embedding and the gated activation as custom autograd functions. The arithmetic is the reference forms'
// (same products, same roundings, same order), so values and gradients match them bit for bit in every dtype.
#include "services/trainer/model/fused_ops.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <tuple>
#include <utility>

namespace tuneforge {

namespace {

// x*cos + rotate_half(x)*sin in three passes: the rotated products are written half by half into one buffer, then
// subtracted from and added to x*cos in place. (-a)*b == -(a*b) and c + (-p) == c - p exactly, so the roundings are
// the reference's.
at::Tensor Rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor rotated = at::empty_like(x, at::MemoryFormat::Contiguous);
  at::Tensor first = rotated.narrow(-1, 0, half), second = rotated.narrow(-1, half, half);
  at::mul_out(first, x.narrow(-1, half, half), sin.narrow(-1, 0, half));
  at::mul_out(second, x.narrow(-1, 0, half), sin.narrow(-1, half, half));
  at::Tensor out = x * cos;
  out.narrow(-1, 0, half).sub_(rotated.narrow(-1, 0, half));
  out.narrow(-1, half, half).add_(rotated.narrow(-1, half, half));
  return out;
}

// The transpose of Rotate: d/dx1 = g1*cos1 + g2*sin2, d/dx2 = g2*cos2 - g1*sin1 (the sums autograd forms from the
// reference's mul, cat, neg and slice nodes).
at::Tensor RotateBack(const at::Tensor& g, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = g.size(-1) / 2;
  at::Tensor by_sin = g * sin;
  at::Tensor out = g * cos;
  out.narrow(-1, 0, half).add_(by_sin.narrow(-1, half, half));
  out.narrow(-1, half, half).sub_(by_sin.narrow(-1, 0, half));
  return out;
}

class RopeFunction : public torch::autograd::Function<RopeFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q,
                                                const at::Tensor& k, const at::Tensor& cos, const at::Tensor& sin) {
    ctx->saved_data["cos"] = cos;
    ctx->saved_data["sin"] = sin;
    return {Rotate(q, cos, sin), Rotate(k, cos, sin)};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor cos = ctx->saved_data["cos"].toTensor(), sin = ctx->saved_data["sin"].toTensor();
    auto back = [&](const at::Tensor& g) { return g.defined() ? RotateBack(g, cos, sin) : at::Tensor(); };
    return {back(grads[0]), back(grads[1]), at::Tensor(), at::Tensor()};
  }
};

at::Tensor Activate(const at::Tensor& t, Activation activation) {
  switch (activation) {
    case Activation::kSilu:
      return at::silu(t);
    case Activation::kGeluTanh:
      return at::gelu(t, "tanh");
    case Activation::kGeluErf:
      return at::gelu(t);
  }
  return t;
}

// d act(gate) / d gate applied to `grad`: the kernels autograd runs for the reference's activation node.
at::Tensor ActivationBackward(const at::Tensor& grad, const at::Tensor& gate, Activation activation) {
  switch (activation) {
    case Activation::kSilu:
      return at::silu_backward(grad, gate);
    case Activation::kGeluTanh:
      return at::gelu_backward(grad, gate, "tanh");
    case Activation::kGeluErf:
      return at::gelu_backward(grad, gate);
  }
  return grad;
}

// gate's and up's gradients (inputs 0 and 1 of the node) from g, the gradient of act(gate) * up. `activated` is
// act(gate) when the caller has it already; it is let go before gate's gradient, which needs two more tensors of its
// size.
std::pair<at::Tensor, at::Tensor> GatedGradients(torch::autograd::AutogradContext* ctx, const at::Tensor& g,
                                                 const at::Tensor& gate, const at::Tensor& up, Activation activation,
                                                 at::Tensor activated = {}) {
  at::Tensor grad_gate, grad_up;
  if (!g.defined()) return {};
  if (ctx->needs_input_grad(1)) grad_up = g * (activated.defined() ? activated : Activate(gate, activation));
  activated.reset();
  if (ctx->needs_input_grad(0)) grad_gate = ActivationBackward(g * up, gate, activation);
  return {grad_gate, grad_up};
}

class GatedActivationFunction : public torch::autograd::Function<GatedActivationFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up,
                            int64_t activation) {
    ctx->saved_data["activation"] = activation;
    ctx->save_for_backward({gate, up});
    return Activate(gate, static_cast<Activation>(activation)) * up;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& gate = saved[0];
    const at::Tensor& up = saved[1];
    const auto activation = static_cast<Activation>(ctx->saved_data["activation"].toInt());
    auto [grad_gate, grad_up] = GatedGradients(ctx, grads[0], gate, up, activation);
    return {grad_gate, grad_up, at::Tensor()};
  }
};

// act(gate) * up = h and the LoRA down-projection of the MLP's output projection, h A^T, as one node that keeps gate,
// up and A: h, which A's gradient needs, is formed again in the backward instead of kept. The base projection of h
// keeps only its frozen weight, so h is not kept anywhere.
class GatedActivationLoraDownFunction : public torch::autograd::Function<GatedActivationLoraDownFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& gate,
                                                const at::Tensor& up, const at::Tensor& lora_a, int64_t activation) {
    ctx->saved_data["activation"] = activation;
    ctx->save_for_backward({gate, up, lora_a});
    at::Tensor h = Activate(gate, static_cast<Activation>(activation)) * up;
    at::Tensor down = at::linear(h, lora_a);
    return {h, down};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& gate = saved[0];
    const at::Tensor& up = saved[1];
    const at::Tensor& lora_a = saved[2];
    const auto activation = static_cast<Activation>(ctx->saved_data["activation"].toInt());
    const at::Tensor& grad_down = grads[1];
    at::Tensor grad_gate, grad_up, grad_a, activated;  // act(gate), formed once for h and up's gradient
    if (ctx->needs_input_grad(2) && grad_down.defined()) {
      activated = Activate(gate, activation);
      const at::Tensor h = activated * up;
      grad_a = at::mm(grad_down.reshape({-1, grad_down.size(-1)}).t(), h.reshape({-1, h.size(-1)}));
    }
    // h's gradient: from the base projection, plus the LoRA branch's. Two terms, so the order of the sum changes no
    // bit; added in place into the incoming gradient when nothing else holds it, as autograd accumulates, so that
    // no third tensor of this size is alive at once.
    at::Tensor g = std::move(grads[0]);
    if (grad_down.defined()) {
      at::Tensor part = at::matmul(grad_down, lora_a);
      if (!g.defined()) {
        g = std::move(part);
      } else if (g.use_count() == 1 && !g.is_view() && g.is_contiguous()) {
        g.add_(part);
      } else {
        g = g + part;
      }
    }
    std::tie(grad_gate, grad_up) = GatedGradients(ctx, g, gate, up, activation, std::move(activated));
    return {grad_gate, grad_up, grad_a, at::Tensor()};
  }
};

// Dropout as torch's composite form computes it: noise = bernoulli(1 - p) in x's dtype, divided by 1 - p; x * noise.
// The noise is kept as a one-byte mask and formed again from it (0 or 1, then the same division) in the backward.
at::Tensor Noise(const at::Tensor& keep, const at::Tensor& like, double p) {
  return keep.to(like.scalar_type()).div_(1 - p);
}

class DropoutLinearFunction : public torch::autograd::Function<DropoutLinearFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            double p) {
    at::Tensor noise = at::empty_like(x).bernoulli_(1 - p);
    const at::Tensor keep = noise.to(at::kBool);
    noise.div_(1 - p);
    ctx->saved_data["p"] = p;
    ctx->save_for_backward({x, keep, weight});
    return at::linear(x * noise, weight);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[2];
    const at::Tensor noise = Noise(saved[1], x, ctx->saved_data["p"].toDouble());
    const at::Tensor& g = grads[0];
    at::Tensor grad_x, grad_weight;
    if (ctx->needs_input_grad(0)) grad_x = at::matmul(g, weight) * noise;
    if (ctx->needs_input_grad(1)) {
      const at::Tensor dropped = x * noise;
      grad_weight = at::mm(g.reshape({-1, g.size(-1)}).t(), dropped.reshape({-1, dropped.size(-1)}));
    }
    return {grad_x, grad_weight, at::Tensor()};
  }
};

}  // namespace

at::Tensor DropoutLinear(const at::Tensor& x, const at::Tensor& weight, double p) {
  return DropoutLinearFunction::apply(x, weight, p);
}

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

std::pair<at::Tensor, at::Tensor> ApplyRope(const at::Tensor& q, const at::Tensor& k, const at::Tensor& cos,
                                            const at::Tensor& sin) {
  auto out = RopeFunction::apply(q, k, cos, sin);
  return {out[0], out[1]};
}

at::Tensor ApplyRopeReference(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return x * cos + RotateHalf(x) * sin;
}

at::Tensor GatedActivation(const at::Tensor& gate, const at::Tensor& up, Activation activation) {
  return GatedActivationFunction::apply(gate, up, static_cast<int64_t>(activation));
}

std::pair<at::Tensor, at::Tensor> GatedActivationLoraDown(const at::Tensor& gate, const at::Tensor& up,
                                                          const at::Tensor& lora_a, Activation activation) {
  auto out = GatedActivationLoraDownFunction::apply(gate, up, lora_a, static_cast<int64_t>(activation));
  return {out[0], out[1]};
}

at::Tensor GatedActivationReference(const at::Tensor& gate, const at::Tensor& up, Activation activation) {
  return Activate(gate, activation) * up;
}

}  // namespace tuneforge
