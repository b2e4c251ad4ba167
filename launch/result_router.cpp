// Routing of finished records' lines to the writer rank (see result_router.h).
#include "launch/result_router.h"

#include <cstring>

#include "engine/core/error.h"
#include "io/result_writer.h"
#include "launch/progress.h"

namespace gridlm {

namespace {

// Message tags between replicas' reporters and the writer: result lines, then one "done" each.
enum Tag : int { tag_result = 21, tag_done = 22 };

}  // namespace

ResultRouter::ResultRouter(const JobGrid& grid, ResultWriter* writer, Progress* progress)
    : g_(grid), writer_(writer), progress_(progress) {
    GRIDLM_ASSERT(g_.replicas == 1 || g_.dp != nullptr);
}

void ResultRouter::emit(uint64_t index, bool ok, int64_t prompt_tokens, int64_t completion_tokens,
                        const std::string& line) {
    if (ok) {
        ++ok_;
    } else {
        ++failed_;
    }
    if (!g_.reporter()) return;
    if (g_.writer()) {
        write_here(index, line, ok, prompt_tokens, completion_tokens);
        return;
    }
    // [index u64][prompt_tokens i64][completion_tokens i64][ok i64][line]
    std::vector<char> msg(32 + line.size());
    const int64_t head[4] = {(int64_t)index, prompt_tokens, completion_tokens, ok ? 1 : 0};
    std::memcpy(msg.data(), head, sizeof(head));
    std::memcpy(msg.data() + 32, line.data(), line.size());
    outbox_.push_back({std::move(msg), nullptr});
    outbox_.back().second = g_.dp->isend(outbox_.back().first.data(), outbox_.back().first.size(), 0, tag_result);
    while (!outbox_.empty() && outbox_.front().second->test()) outbox_.pop_front();
}

void ResultRouter::write_here(uint64_t index, std::string line, bool ok, int64_t prompt_tokens,
                              int64_t completion_tokens) {
    writer_->write_line(index, std::move(line), ok);
    if (progress_) {
        progress_->record_done(ok, prompt_tokens, completion_tokens);
        progress_->tick();
    }
}

bool ResultRouter::poll(bool wait) {
    if (!g_.writer() || g_.replicas == 1) return true;
    for (;;) {
        auto in = g_.dp->probe(wait);
        if (!in) return true;
        std::vector<char> msg(in->bytes);
        g_.dp->recv(msg.data(), msg.size(), in->source, in->tag);
        if (in->tag == tag_done) {
            int64_t counts[2];
            GRIDLM_ASSERT(msg.size() == sizeof(counts));
            std::memcpy(counts, msg.data(), sizeof(counts));
            remote_ok_ += counts[0];
            remote_failed_ += counts[1];
            ++replicas_done_;
            return false;
        }
        GRIDLM_ASSERT(in->tag == tag_result && msg.size() >= 32);
        int64_t head[4];
        std::memcpy(head, msg.data(), sizeof(head));
        write_here((uint64_t)head[0], std::string(msg.data() + 32, msg.size() - 32), head[3] != 0, head[1], head[2]);
        if (wait) return true;
    }
}

void ResultRouter::finish() {
    if (g_.replicas == 1 || !g_.reporter()) return;
    if (g_.writer()) {
        while (replicas_done_ < g_.replicas - 1) poll(true);
        ok_ += remote_ok_;
        failed_ += remote_failed_;
        return;
    }
    for (auto& [msg, req] : outbox_) req->wait();
    outbox_.clear();
    const int64_t counts[2] = {ok_, failed_};
    g_.dp->send(counts, sizeof(counts), 0, tag_done);
}

}  // namespace gridlm
