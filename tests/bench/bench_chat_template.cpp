// Chat template rendering speed: every template of tests/reference/chat_templates/ with every
// conversation of tests/reference/chat_conversations.json that it renders, through
// ChatTemplate::apply (message JSON parsed, HF's message normalisation, render), repeated.
// Prints one JSON line: renders, microseconds per render (median over templates of each
// template's mean) and the total rate. The peer is Python jinja2 set up as HF transformers sets
// it up: tests/bench/bench_chat_template_jinja2.py prints the same line for the same pairs.
//   build/bin/bench_chat_template [--repeat N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/jinja/value.h"
#include "engine/tokenizer/chat_template.h"

using namespace gridlm;
using jinja::Value;

namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot open " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct Chat {
    std::vector<ChatMessage> messages;
    ChatExtras extras;
};

}  // namespace

int main(int argc, char** argv) {
    int repeat = 200;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc) {
            repeat = std::atoi(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: bench_chat_template [--repeat N]\n");
            return 2;
        }
    }
    const std::string ref = std::string(GRIDLM_SOURCE_DIR) + "/tests/reference";
    std::vector<Chat> chats;
    const Value conversations = jinja::parse_json_value(read_file(ref + "/chat_conversations.json"));
    for (const Value& c : conversations.items()) {
        Chat chat;
        for (const Value& m : c.find("messages")->items())
            chat.messages.push_back({m.find("role")->as_string(), "", jinja::to_json(m, jinja::JsonStyle::compact())});
        if (const Value* t = c.find("tools")) chat.extras.tools_json = jinja::to_json(*t, jinja::JsonStyle::compact());
        if (const Value* k = c.find("chat_template_kwargs"))
            chat.extras.kwargs_json = jinja::to_json(*k, jinja::JsonStyle::compact());
        if (const Value* a = c.find("add_generation_prompt")) chat.extras.add_generation_prompt = a->truthy();
        chats.push_back(std::move(chat));
    }
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(ref + "/chat_templates")) {
        if (e.path().extension() == ".jinja") files.push_back(e.path().filename().string());
    }
    std::sort(files.begin(), files.end());
    std::vector<double> per_template_us;
    int64_t renders = 0;
    double total_s = 0;
    size_t chars = 0;
    for (const std::string& f : files) {
        const ChatTemplate t(read_file(ref + "/chat_templates/" + f), "<s>", "</s>", f);
        std::vector<const Chat*> ok;  // the conversations this template renders
        for (const Chat& c : chats) {
            try {
                chars += t.apply(c.messages, c.extras).size();
                ok.push_back(&c);
            } catch (const Error&) {  // a refusal: the pair is left out, as in the peer's run
            }
        }
        if (ok.empty()) continue;
        const auto t0 = std::chrono::steady_clock::now();
        for (int r = 0; r < repeat; ++r) {
            for (const Chat* c : ok) chars += t.apply(c->messages, c->extras).size();
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const int64_t n = static_cast<int64_t>(repeat) * static_cast<int64_t>(ok.size());
        per_template_us.push_back(1e6 * s / static_cast<double>(n));
        renders += n;
        total_s += s;
    }
    if (per_template_us.empty()) {
        std::fprintf(stderr, "bench_chat_template: no template rendered any conversation\n");
        return 1;
    }
    std::sort(per_template_us.begin(), per_template_us.end());
    std::printf(
        "{\"engine\": \"gridlm\", \"templates\": %zu, \"renders\": %lld, \"median_us_per_render\": %.1f, "
        "\"max_us_per_render\": %.1f, \"renders_per_s\": %.0f, \"checksum_chars\": %zu}\n",
        per_template_us.size(), static_cast<long long>(renders), per_template_us[per_template_us.size() / 2],
        per_template_us.back(), static_cast<double>(renders) / total_s, chars);
    return 0;
}
