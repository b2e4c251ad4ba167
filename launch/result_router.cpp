// Routing of finished records' lines to the writer rank (see result_router.h).
#include "launch/result_router.h"

#include <cstring>

#include "engine/core/error.h"
#include "io/prompt_reader.h"
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

void ResultRouter::emit(uint64_t index, const RecordStatus& status, int64_t prompt_tokens, int64_t completion_tokens,
                        const std::string& line) {
    if (status.ok) {
        ++ok_;
    } else {
        ++failed_;
    }
    if (!g_.reporter()) return;
    if (g_.writer()) {
        write_here(index, line, status, prompt_tokens, completion_tokens);
        return;
    }
    // [index u64][prompt_tokens i64][completion_tokens i64][ok i64][kind size i64][filter size i64]
    // [kind][filter][line]
    const int64_t head[6] = {(int64_t)index,
                             prompt_tokens,
                             completion_tokens,
                             status.ok ? 1 : 0,
                             (int64_t)status.kind.size(),
                             (int64_t)status.filter.size()};
    std::vector<char> msg(sizeof(head) + status.kind.size() + status.filter.size() + line.size());
    char* at = msg.data();
    for (const auto& [p, n] : {std::pair<const void*, size_t>{head, sizeof(head)},
                               {status.kind.data(), status.kind.size()},
                               {status.filter.data(), status.filter.size()},
                               {line.data(), line.size()}}) {
        if (n > 0) std::memcpy(at, p, n);
        at += n;
    }
    outbox_.push_back({std::move(msg), nullptr});
    outbox_.back().second = g_.dp->isend(outbox_.back().first.data(), outbox_.back().first.size(), 0, tag_result);
    while (!outbox_.empty() && outbox_.front().second->test()) outbox_.pop_front();
}

void ResultRouter::write_here(uint64_t index, std::string line, const RecordStatus& status, int64_t prompt_tokens,
                              int64_t completion_tokens) {
    written_.insert(index);
    writer_->write_line(index, std::move(line), status.ok);
    ++kinds_[status.kind];
    if (!status.filter.empty()) ++filter_hits_[status.filter];
    if (progress_) {
        progress_->record_done(status.ok, prompt_tokens, completion_tokens);
        progress_->tick();
    }
}

int64_t ResultRouter::written() const { return writer_ ? (int64_t)writer_->written() : 0; }
int64_t ResultRouter::written_failed() const { return writer_ ? (int64_t)writer_->written_failed() : 0; }

MissingRecords ResultRouter::missing(PromptReader& reader, const IndexSet& done, size_t max_listed) const {
    GRIDLM_ASSERT(g_.writer());
    while (reader.next()) {
    }
    MissingRecords m;
    m.records = reader.records_read();
    for (uint64_t i = 0; i < m.records; ++i) {
        if (written_.count(i) || done.count(i)) continue;
        ++m.count;
        if (m.first.size() < max_listed) m.first.push_back(i);
    }
    return m;
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
        int64_t head[6];
        GRIDLM_ASSERT(in->tag == tag_result && msg.size() >= sizeof(head));
        std::memcpy(head, msg.data(), sizeof(head));
        GRIDLM_ASSERT(head[4] >= 0 && head[5] >= 0 && sizeof(head) + head[4] + head[5] <= msg.size());
        const char* at = msg.data() + sizeof(head);
        RecordStatus status{head[3] != 0, std::string(at, (size_t)head[4]), std::string(at + head[4], (size_t)head[5])};
        at += head[4] + head[5];
        write_here((uint64_t)head[0], std::string(at, (size_t)(msg.data() + msg.size() - at)), status, head[1],
                   head[2]);
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
