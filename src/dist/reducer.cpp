// Implements the bucketed, backward-overlapped gradient reducer (see reducer.h).
#include "dist/reducer.h"

#include <torch/torch.h>

#include "core/error.h"

namespace vitslim::dist {

struct GradientReducer::Slot {
  std::string name;
  at::Tensor param;
  size_t bucket = 0;
  at::Tensor view;  // this parameter's slice of its bucket, shaped like the parameter
  bool ready = false;
  unsigned hook = 0;
};

struct GradientReducer::Bucket {
  at::Tensor flat;  // [numel] float32
  std::vector<size_t> slots;
  size_t pending = 0;
  std::unique_ptr<Work> work;
};

GradientReducer::GradientReducer(std::vector<std::pair<std::string, at::Tensor>> params, Communicator& comm,
                                 int64_t bucket_bytes, int64_t first_bucket_bytes)
    : comm_(comm), scale_(torch::scalar_tensor(1.0 / comm.size())) {
  if (params.empty()) throw Error("gradient reducer: no parameters");
  // Reverse registration order approximates the order in which backward produces gradients.
  std::vector<std::vector<size_t>> groups(1);
  int64_t filled = 0;
  for (size_t k = params.size(); k-- > 0;) {
    auto& [name, p] = params[k];
    if (p.scalar_type() != torch::kFloat32) throw Error(cat("gradient reducer: parameter ", name, " is not float32"));
    const int64_t limit = groups.size() == 1 ? first_bucket_bytes : bucket_bytes;
    const int64_t bytes = p.numel() * static_cast<int64_t>(sizeof(float));
    if (!groups.back().empty() && filled + bytes > limit) {
      groups.emplace_back();
      filled = 0;
    }
    auto slot = std::make_unique<Slot>();
    slot->name = name;
    slot->param = p;
    slot->bucket = groups.size() - 1;
    groups.back().push_back(slots_.size());
    slots_.push_back(std::move(slot));
    filled += bytes;
  }
  for (auto& members : groups) {
    auto bucket = std::make_unique<Bucket>();
    int64_t numel = 0;
    for (size_t s : members) numel += slots_[s]->param.numel();
    bucket->flat = torch::zeros({numel}, slots_[members.front()]->param.options().requires_grad(false));
    int64_t offset = 0;
    for (size_t s : members) {
      Slot& slot = *slots_[s];
      slot.view = bucket->flat.narrow(0, offset, slot.param.numel()).view(slot.param.sizes());
      offset += slot.param.numel();
    }
    bucket->slots = std::move(members);
    stats_.bytes += numel * static_cast<int64_t>(sizeof(float));
    buckets_.push_back(std::move(bucket));
  }
  stats_.buckets = static_cast<int64_t>(buckets_.size());
  for (size_t s = 0; s < slots_.size(); ++s) {
    slots_[s]->hook = slots_[s]->param.register_hook([this, s](const at::Tensor& grad) { on_grad(s, grad); });
  }
}

// Removes the hooks and drops the work handles. An MPI work handle waits for its all-reduce; an
// NCCL one does not wait at all. After finish() that is safe: the compute stream is ordered after
// every all-reduce, so bucket memory freed here is reused only after them. A reducer unwound in
// the middle of a step (an error) could leave NCCL kernels writing into freed memory, which is
// why the trainer ends every rank together before unwinding (Trainer::run).
GradientReducer::~GradientReducer() {
  for (auto& slot : slots_) slot->param.remove_hook(slot->hook);
  for (auto& bucket : buckets_) bucket->work.reset();
}

void GradientReducer::begin(bool sync) {
  sync_ = sync;
  if (!sync) return;
  next_launch_ = 0;
  for (auto& slot : slots_) slot->ready = false;
  for (auto& bucket : buckets_) {
    bucket->pending = bucket->slots.size();
    bucket->work.reset();
  }
}

void GradientReducer::on_grad(size_t s, const at::Tensor& grad) {
  if (!sync_) return;
  Slot& slot = *slots_[s];
  torch::NoGradGuard no_grad;
  // The hook runs before the gradient is accumulated into .grad: add what earlier micro-steps
  // left. Scaling by 1/world here makes the sum over ranks the mean without another pass.
  const at::Tensor& earlier = slot.param.grad();
  if (earlier.defined()) {
    torch::add_out(slot.view, earlier, grad).mul_(scale_);
  } else {
    torch::mul_out(slot.view, grad, scale_);
  }
  if (!slot.ready) {
    slot.ready = true;
    --buckets_[slot.bucket]->pending;
  }
  launch_ready();
}

void GradientReducer::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->pending == 0) {
    Bucket& b = *buckets_[next_launch_];
    b.work = comm_.allreduce_sum_async(b.flat.data_ptr(), b.flat.numel(), DType::Float32);
    ++next_launch_;
  }
  // Drive progress of what is in flight (MPI progresses inside MPI calls).
  for (size_t k = 0; k < next_launch_; ++k) {
    if (buckets_[k]->work) buckets_[k]->work->test();
  }
}

void GradientReducer::finish() {
  if (!sync_) throw Error("gradient reducer: finish() after a non-sync micro-step");
  torch::NoGradGuard no_grad;
  stats_.overlapped += static_cast<int64_t>(next_launch_);
  for (auto& bucket : buckets_) {
    for (size_t s : bucket->slots) {
      Slot& slot = *slots_[s];
      if (slot.ready) continue;  // no gradient this step (unused parameter): contributes zeros
      const at::Tensor& earlier = slot.param.grad();
      if (earlier.defined()) {
        torch::mul_out(slot.view, earlier, scale_);
      } else {
        slot.view.zero_();
      }
      slot.ready = true;
      --bucket->pending;
    }
  }
  launch_ready();
  auto timer = comm_.start_wait_timer();
  for (auto& bucket : buckets_) bucket->work->wait();
  timer->stop();
  last_wait_ = std::move(timer);
  for (auto& bucket : buckets_) bucket->work.reset();
  for (auto& slot : slots_) slot->param.mutable_grad() = slot->view;
  sync_ = false;
}

std::vector<std::vector<std::string>> GradientReducer::bucket_names() const {
  std::vector<std::vector<std::string>> names;
  for (const auto& bucket : buckets_) {
    names.emplace_back();
    for (size_t s : bucket->slots) names.back().push_back(slots_[s]->name);
  }
  return names;
}

}  // namespace vitslim::dist
