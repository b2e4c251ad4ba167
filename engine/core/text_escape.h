// Escaping text for HTML and XML (SVG): the five characters with a meaning in markup.
#pragma once

#include <string>
#include <string_view>

namespace gridlm {

// & < > " ' become &amp; &lt; &gt; &#34; &#39;, the replacements of Python's markupsafe (what
// Jinja's `escape` filter writes, so templates render byte-identically); valid in HTML text and
// attribute values and in XML. Other bytes, UTF-8 included, pass unchanged.
std::string html_escape(std::string_view s);

}  // namespace gridlm
