// One turn of a chat conversation, as read from a request and rendered by a chat template.
#pragma once

#include <string>

namespace gridlm {

struct ChatMessage {
    std::string role;     // "system" | "user" | "assistant" | "tool" | ...
    std::string content;  // the text (text parts joined); for messages and logs
    // The message object as the request gave it, as JSON text (tool_calls, name, reasoning_content,
    // content parts... reach the template as given). Empty: the template sees {role, content}.
    std::string json;
};

// What a chat request adds to its messages (OpenAI chat-completions body members), each optional.
struct ChatExtras {
    std::string tools_json;      // "tools": JSON array of tool definitions, as given
    std::string documents_json;  // "documents": JSON array (retrieval-augmented templates)
    std::string kwargs_json;     // "chat_template_kwargs": JSON object, spread as template variables
    bool add_generation_prompt = true;
};

}  // namespace gridlm
