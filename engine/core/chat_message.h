// One turn of a chat conversation, as read from a request and rendered by a chat template.
#pragma once

#include <string>

namespace gridlm {

struct ChatMessage {
    std::string role;  // "system" | "user" | "assistant" | ...
    std::string content;
};

}  // namespace gridlm
