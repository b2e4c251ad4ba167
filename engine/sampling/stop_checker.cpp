// Stop conditions of a sequence (see stop_checker.h).
#include "engine/sampling/stop_checker.h"

#include <algorithm>
#include <utility>

#include "engine/core/error.h"

namespace gridlm {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
    // Empty stop strings would match everywhere; the reader rejects them, drop them here too.
    stops_.erase(std::remove_if(stops_.begin(), stops_.end(), [](const std::string& s) { return s.empty(); }),
                 stops_.end());
}

StopStringMatcher::Result StopStringMatcher::feed(std::string_view piece, bool allow_stop) {
    Result r;
    if (stops_.empty()) {
        r.text.assign(piece);
        return r;
    }
    std::string buf = std::move(pending_);
    buf.append(piece);
    pending_.clear();
    if (allow_stop) {
        size_t first = std::string::npos;
        for (const auto& s : stops_) first = std::min(first, buf.find(s));
        if (first != std::string::npos) {
            r.text = buf.substr(0, first);
            r.stopped = true;
            return r;
        }
    }
    // Hold back the longest tail of buf that is a proper prefix of some stop string.
    size_t hold = 0;
    for (const auto& s : stops_) {
        const size_t max_len = std::min(s.size() - 1, buf.size());
        for (size_t len = max_len; len > hold; --len) {
            if (buf.compare(buf.size() - len, len, s, 0, len) == 0) {
                hold = len;
                break;
            }
        }
    }
    r.text = buf.substr(0, buf.size() - hold);
    pending_ = buf.substr(buf.size() - hold);
    return r;
}

std::string StopStringMatcher::flush() { return std::exchange(pending_, std::string()); }

StopChecker::StopChecker(const SamplingParams& params, int32_t eos_id, int32_t max_tokens)
    : eos_id_(eos_id),
      ignore_eos_(params.ignore_eos),
      stop_token_ids_(params.stop_token_ids),
      min_tokens_(params.min_tokens),
      max_tokens_(max_tokens),
      matcher_(params.stop),
      has_stop_strings_(!params.stop.empty()) {
    GRIDLM_ASSERT(max_tokens_ >= 1);
}

std::optional<FinishReason> StopChecker::on_token(int32_t token, std::string_view text_piece) {
    GRIDLM_ASSERT(!finished_);
    ++n_generated_;
    // vLLM's rule: no stop condition but the length applies while fewer than min_tokens tokens
    // (this one included) exist.
    const bool may_stop = n_generated_ >= min_tokens_;
    if (may_stop) {
        const bool is_eos = !ignore_eos_ && eos_id_ >= 0 && token == eos_id_;
        const bool is_stop_id =
            std::find(stop_token_ids_.begin(), stop_token_ids_.end(), token) != stop_token_ids_.end();
        if (is_eos || is_stop_id) {
            finished_ = FinishReason::finish_reason_stop;
            return finished_;
        }
    }
    if (has_stop_strings_) {
        auto r = matcher_.feed(text_piece, may_stop);
        text_ += r.text;
        if (r.stopped) {
            stopped_by_string_ = true;
            finished_ = FinishReason::finish_reason_stop;
            return finished_;
        }
    } else {
        text_.append(text_piece);
    }
    if (n_generated_ >= max_tokens_) {
        finished_ = FinishReason::finish_reason_length;
        return finished_;
    }
    return std::nullopt;
}

std::string StopChecker::finish(std::string_view undecoded_tail) {
    if (!stopped_by_string_) {
        // A stop string may still complete inside bytes the detokenizer held back.
        auto r = matcher_.feed(undecoded_tail, n_generated_ >= min_tokens_);
        text_ += r.text;
        if (!r.stopped) text_ += matcher_.flush();
    }
    return std::move(text_);
}

}  // namespace gridlm
