// Implements bipartite soft matching and the size-weighted token merge (see token_merge.h).
#include "model/token_merge.h"

#include <torch/torch.h>

#include <limits>

#include "core/error.h"
#include "model/tome.h"

namespace vitslim::model {
namespace {

using torch::indexing::None;
using torch::indexing::Slice;

// Which tokens go where, as rows of the flattened [B * N, K] input and output: kept A tokens in
// their order, then every B token; merging A tokens add onto their partners' output rows. Row
// copies (index_select / index_add_) cost less than element-wise gathers.
struct Routes {
  at::Tensor keep;  // [B * (N - r)]: input row of each output row
  at::Tensor from;  // [B * r]: input row of each merging A token
  at::Tensor into;  // [B * r]: output row of its partner
};

Routes match(const at::Tensor& metric, int64_t r, int64_t prefix) {
  torch::NoGradGuard no_grad;
  const int64_t B = metric.size(0), n = metric.size(1), na = (n + 1) / 2, nb = n / 2;
  const int64_t pa = (prefix + 1) / 2, pb = prefix / 2;  // protected tokens of A and of B
  const int64_t kept = na - pa - r;                      // unprotected A tokens that stay
  const double inf = std::numeric_limits<double>::infinity();
  auto m = metric / metric.norm(2, -1, true);  // [B, N, D]
  auto scores = m.index({Slice(), Slice(0, None, 2)}).matmul(m.index({Slice(), Slice(1, None, 2)}).transpose(-1, -2));
  scores.narrow(1, 0, pa).fill_(-inf);       // [B, NA, NB]: protected A tokens never merge,
  scores.narrow(2, 0, pb).fill_(-inf);       // protected B tokens never receive
  auto [best, partner] = scores.max(-1);     // [B, NA] each
  auto src = std::get<1>(best.topk(r, -1));  // [B, r]: the most similar A tokens
  auto dst = partner.gather(1, src);         // [B, r]: their B partners
  const auto index = src.options();
  auto stays = torch::ones({B, na}, index.dtype(torch::kBool)).scatter_(1, src, false);
  stays.narrow(1, 0, pa).fill_(false);  // emitted with the prefix
  auto unmerged = torch::arange(na, index).expand({B, na}).masked_select(stays).view({B, kept});  // in order
  auto image = torch::arange(B, index).unsqueeze(1);                                              // [B, 1]
  Routes rt;
  auto protected_positions = torch::arange(prefix, index).expand({B, prefix});
  auto b_positions = (torch::arange(pb, nb, index) * 2 + 1).expand({B, nb - pb});
  rt.keep = (torch::cat({protected_positions, unmerged * 2, b_positions}, 1) + image * n).reshape(-1);
  rt.from = (src * 2 + image * n).reshape(-1);
  rt.into = (dst - pb + prefix + kept + image * (n - r)).reshape(-1);
  return rt;
}

// out[i] = x[keep[i]], plus x[from[j]] added onto out[into[j]]: [B, N, K] -> [B, N - r, K].
at::Tensor merge_sum(const at::Tensor& x, const Routes& rt) {
  const int64_t B = x.size(0), K = x.size(2);
  auto rows = x.reshape({-1, K});            // [B * N, K]
  auto out = rows.index_select(0, rt.keep);  // [B * (N - r), K]
  out.index_add_(0, rt.into, rows.index_select(0, rt.from));
  return out.view({B, -1, K});
}

// The size-weighted mean of each partner and the tokens merging into it, touching only those r
// rows after the one copy of the kept tokens: with S the partner's new size,
//   (s_d x_d + sum_i s_i x_i) / S = x_d + sum_i (s_i / S) (x_i - x_d).
at::Tensor merge_mean(const at::Tensor& x, const at::Tensor& new_size, const at::Tensor& size, const Routes& rt) {
  const int64_t B = x.size(0), K = x.size(2);
  auto rows = x.reshape({-1, K});            // [B * N, K]
  auto out = rows.index_select(0, rt.keep);  // [B * (N - r), K]
  auto weight = size.reshape({-1, 1}).index_select(0, rt.from) /
                new_size.reshape({-1, 1}).index_select(0, rt.into);                      // [B * r, 1]
  auto delta = (rows.index_select(0, rt.from) - out.index_select(0, rt.into)) * weight;  // [B * r, K]
  return out.index_add(0, rt.into, delta.to(out.scalar_type())).view({B, -1, K});
}

}  // namespace

at::Tensor size_bias(const TokenStream& s) {
  if (!s.size.defined()) return {};
  return s.size.log().squeeze(-1).unsqueeze(1).unsqueeze(1);  // [B, N, 1] -> [B, 1, 1, N]
}

TokenStream merge_tokens(const TokenStream& s, const at::Tensor& metric, int64_t r, int64_t prefix) {
  if (r == 0) return s;
  const int64_t n = s.x.size(1);
  if (r < 0 || prefix < 0 || r > max_merges(n, prefix)) {
    throw Error(cat("token merging: cannot merge ", r, " of ", n, " tokens (", prefix, " protected)"));
  }
  const Routes rt = match(metric, r, prefix);
  at::Tensor size = s.size.defined() ? s.size : torch::ones({s.x.size(0), n, 1}, s.x.options());
  TokenStream out;
  out.size = merge_sum(size, rt);               // [B, N - r, 1]
  out.x = merge_mean(s.x, out.size, size, rt);  // [B, N - r, C]
  return out;
}

}  // namespace vitslim::model
