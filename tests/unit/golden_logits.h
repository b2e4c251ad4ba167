// Comparing a row of logits with a golden record of tests/reference/make_logits_golden.py (and
// make_deepseek_golden.py): {"pos", "top_ids": [20], "top_values": [20], "max", "min"}.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

namespace gridlm::test {

// Max |logit - reference| over the stored top ids and the max / min, divided by the reference
// range (max - min); and whether the argmax is the reference's top id.  row: [n_vocab]
inline std::pair<double, bool> golden_row_error(const float* row, int64_t n_vocab, const nlohmann::json& rec) {
    const double range = rec["max"].get<double>() - rec["min"].get<double>();
    const auto ids = rec["top_ids"].get<std::vector<int32_t>>();
    const auto vals = rec["top_values"].get<std::vector<double>>();
    double worst = 0;
    for (size_t i = 0; i < ids.size(); ++i) worst = std::max(worst, std::fabs(row[ids[i]] - vals[i]));
    const float mx = *std::max_element(row, row + n_vocab), mn = *std::min_element(row, row + n_vocab);
    worst = std::max({worst, std::fabs(mx - rec["max"].get<double>()), std::fabs(mn - rec["min"].get<double>())});
    const int64_t top1 = std::max_element(row, row + n_vocab) - row;
    return {worst / range, top1 == ids.at(0)};
}

}  // namespace gridlm::test
