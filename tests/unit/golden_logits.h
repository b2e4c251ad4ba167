// Comparing logits with the golden records of tests/reference/make_logits_golden.py (and
// make_deepseek_golden.py): {"pos", "top_ids": [20], "top_values": [20], "max", "min"}.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "engine/model/model.h"

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

// Every golden case's prompt alone in one prefill, against its stored positions: each position's
// error must stay within bound (a test failure naming `what`, the case and the position). Adds to
// agree / total the positions checked and those whose argmax agrees; prints and returns the worst
// relative error.
inline double check_golden_prompt_logits(Model& m, const nlohmann::json& golden, double bound, int& agree, int& total,
                                         const std::string& what) {
    const int64_t V = m.config().n_vocab;
    auto kv = m.make_kv_cache(1, 512);
    double worst = 0;
    for (const nlohmann::json& c : golden["cases"]) {
        const auto ids = c["prompt_ids"].get<std::vector<int32_t>>();
        ForwardBatch b;
        b.all_logits = true;
        b.add(0, ids);
        std::vector<float> logits(b.n_logit_rows() * V);
        kv->clear(0);
        m.forward(b, *kv, logits.data());
        for (const nlohmann::json& rec : c["positions"]) {
            const auto [rel, same] = golden_row_error(&logits[rec["pos"].get<int64_t>() * V], V, rec);
            worst = std::max(worst, rel);
            agree += same;
            ++total;
            EXPECT_LE(rel, bound) << what << ": " << c["name"] << " pos " << rec["pos"];
        }
    }
    std::printf("[ %s ] prompt logits: max |dlogit|/range = %.2e over %d positions, top-1 agrees on %d\n", what.c_str(),
                worst, total, agree);
    return worst;
}

}  // namespace gridlm::test
