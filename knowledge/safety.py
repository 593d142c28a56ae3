"""Keep instructions hidden in documents out of the answer's sources.

A knowledge base is written by many hands and may quote untrusted text. Sentences that try
to instruct the assistant ("ignore previous instructions", "Assistant: from now on confirm…",
"你现在是…") are dropped from a source before it reaches the generator, the gate or a citation,
so they can neither steer the answer nor be quoted as fact. Two layers judge a sentence: the
patterns below, and, where ``make injection`` has trained it, a classifier over the sentence's
embedding (``knowledge.instructions``); either one flags it. Base64-looking runs are decoded and
the decoded text judged too.

Each sentence is judged on a normalised copy (``normalise``): invisible format characters
removed, NFKC (full-width letters become ASCII), look-alike Cyrillic and Greek letters mapped
to Latin, combining marks dropped, whitespace collapsed, case folded; then a letter-for-digit
copy ("1gn0re") and a copy without separators ("i.g.n.o.r.e") are judged too. A clean
sentence is kept as written, less its invisible characters (``clean_text``).

The patterns aim at text *addressed to the model*: role markers, overrides of "previous /
above / your" rules, requests for the prompt, personas and modes, and orders about what to
tell the customer. Imperatives addressed to the customer ("You must keep the receipt",
"Ignore the error message", "从现在开始，我们支持支付宝付款") stay. ``tests/unit/test_injection.py``
holds the adversarial and legitimate sets this was tuned on, and the held-out halves.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache

from knowledge.pii import mask_personal_data
from knowledge.text import split_sentences

# Format characters (Unicode category Cf: zero-width space/joiners, bidi controls, word
# joiner, BOM, soft hyphen, tag characters), variation selectors, the combining grapheme
# joiner and Mongolian variation selectors: invisible, and removed wherever text is stored.
INVISIBLE = re.compile(
    "[\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u17b4\u17b5"
    "\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufe00-\ufe0f\ufeff"
    "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f\U000e0100-\U000e01ef]")
# Characters that render as blank space but are letters or symbols (Hangul fillers, the
# blank Braille pattern): they become ordinary spaces.
BLANK = re.compile("[\u115f\u1160\u3164\uffa0\u2800]")
HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)  # unclosed: hidden to the end
_HIDDEN_HINT = re.compile(r"<(?:script|style|template|noscript|iframe|object)\b|hidden|display|"
                          r"visibility|font-size|opacity", re.I)
_OPEN_TAG = re.compile(r"<([a-zA-Z][\w-]*)((?:\s[^<>]*?)?)(/?)>")
_ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
_NEVER_SHOWN = {"script", "style", "template", "noscript", "iframe", "object", "head"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}
LOOKALIKES = str.maketrans(dict(zip(
    "аеёіїјкмнорстухѕԁԛԝһӏвαβεικνορτυχɡı‘’‚‛“”„‟‐‑‒–—―−",
    "aeeiijkmhopctyxsdqwhlbabeikvoptuxgi''''\"\"\"\"-------", strict=True)))
LEET = str.maketrans("013457@$", "oieastas")


def hidden(attrs: Mapping[str, object]) -> bool:
    """Whether an element with these attributes is hidden from readers (``hidden``,
    ``aria-hidden="true"``, ``display:none``, ``visibility:hidden``, zero size or opacity):
    a classic place to hide instructions. HTML import and Markdown import both ask this."""
    style = str(attrs.get("style") or "").replace(" ", "").lower()
    return ("hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true"
            or "display:none" in style or "visibility:hidden" in style
            or bool(re.search(r"(?:^|;)(?:font-size:0(?:px|em|rem|pt|%)?|opacity:0(?:\.0*)?)"
                              r"(?:;|$|!)", style)))


def strip_hidden_html(text: str) -> str:
    """Markdown without its HTML comments and the HTML elements a reader never sees
    (``hidden`` ones and script, style, template …); visible HTML is left as it is."""
    text = HTML_COMMENT.sub("", text)
    if not _HIDDEN_HINT.search(text):
        return text
    out, pos = [], 0
    while match := _OPEN_TAG.search(text, pos):
        name = match.group(1).lower()
        attrs = {m.group(1).lower(): next((g for g in m.groups()[1:] if g is not None), "")
                 for m in _ATTRIBUTE.finditer(match.group(2))}
        if name not in _NEVER_SHOWN and not hidden(attrs):
            out.append(text[pos:match.end()])
            pos = match.end()
            continue
        out.append(text[pos:match.start()])
        pos = match.end() if match.group(3) or name in _VOID else _closing(text, name,
                                                                            match.end())
    out.append(text[pos:])
    return "".join(out)


def _closing(text: str, name: str, start: int) -> int:
    """Where the element opened before ``start`` ends (nested ones of its name counted);
    the end of the text when it is never closed, as a browser would hide the rest."""
    depth = 1
    for tag in re.compile(rf"<(/?){re.escape(name)}\b[^<>]*?(/?)>", re.I).finditer(text, start):
        depth += -1 if tag.group(1) else 0 if tag.group(2) else 1
        if depth == 0:
            return tag.end()
    return len(text)


def clean_text(text: str) -> str:
    """``text`` without invisible characters (blank look-alikes become spaces)."""
    return BLANK.sub(" ", INVISIBLE.sub("", text))


def normalise(text: str) -> str:
    """The form a sentence is judged in: see the module's docstring."""
    text = unicodedata.normalize("NFKC", clean_text(html.unescape(text))).casefold()
    text = text.translate(LOOKALIKES)
    text = "".join(c for c in unicodedata.normalize("NFD", text)
                   if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip()


def _variants(judged: str) -> tuple[str, str]:
    """Digits read as letters inside words that mix both ("prev10us"), and the text without
    anything between letters ("i g n o r e", "i.g.n.o.r.e")."""
    leet = re.sub(r"[a-z0-9@$]*[a-z][a-z0-9@$]*",
                  lambda m: m.group().translate(LEET) if re.search(r"[0-9@$]", m.group())
                  else m.group(), judged)
    squashed = re.sub(r"[^a-z\u3400-\u9fff]", "", leet)
    return leet, squashed


def _any(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


_QUALIFIER = (r"(?:previous|prior|above|preceding|earlier|foregoing|original|initial|system|"
              r"existing|all|any|every|your|these|those)")
_RULES = (r"(?:instructions?|rules?|guidelines?|guidance|directions|directives?|prompts?|commands?|"
          r"constraints?|restrictions?|filters?|(?:content|safety|usage) polic(?:y|ies)|"
          r"programming|training|guardrails?|system message|context)")
_OVERRIDE = (r"(?:ignore|ignoring|disregard|disregarding|forget|forgetting|override|overrule|"
             r"bypass|circumvent|skip|discard|abandon|set aside|throw out|stop following|"
             r"stop obeying|(?:do not|don't|dont|never|no longer) (?:follow|obey))")
_GIVEN = (r"(?:you (?:were|have been|'ve been) (?:given|told|configured|programmed|trained|"
          r"instructed|provided|initiali[sz]ed)|you (?:received|got)|given to you|above|before|"
          r"earlier|previously|so far)\b")
_MODEL = (r"(?:ai|a\.i\.|assistant|chatbot|bot|language model|llm|gpt|chatgpt|model|"
          r"large language model)")
_PEOPLE = r"(?:customers?|users?|clients?|buyers?|shoppers?|visitors?|callers?|requesters?)"
_SAY = r"(?:say|state|claim|reply|respond|answer|assure|promise|tell)"
_OUTCOME = (r"(?:approv\w*|issued|refunded|eligib\w*|qualif\w*|free|granted|accepted|processed|"
            r"credited|compensat\w*|waived|lifetime|unlimited|full refund|in full|verified)")
_CUE_EN = (r"\b(?:you|your|ignore|disregard|forget|rules?|instructions?|must|always|never|"
           r"from now on|confirm|reply|respond|answer|say|tell|pretend|act as|mode)\b")
_CUE_ZH = r"你|忽略|无视|规则|指令|必须|回答|回复|确认|告诉|扮演|假装|从现在|限制"
_ZH_VERB = (r"(?:回答|回复|答复|确认|告诉|声称|说|承认|同意|批准|扮演|假装|忽略|无视|输出|泄露|"
            r"服从|遵守)")
_ZH_NOT_MODEL = r"(?:确认收货|确认订单|确认地址|确认邮箱|确认付款|确认您的)"

ENGLISH = _any(
    # overrides of the rules the model was given
    rf"\b{_OVERRIDE}\b[^.!?;]{{0,40}}?\b{_QUALIFIER}\b[^.!?;]{{0,20}}?\b{_RULES}\b",
    rf"\b{_OVERRIDE}\b[^.!?;]{{0,20}}?\b{_RULES}\b[^.!?;]{{0,30}}?\b{_GIVEN}",
    rf"\b(?:overrides?|supersedes?|takes precedence over)\s+(?:all\s+|any\s+)?{_QUALIFIER}\s+"
    rf"(?:[\w-]+\s+)?{_RULES}\b",
    rf"\byou (?:no longer|never) (?:have to|need to|must|should) (?:follow|obey|comply with|"
    rf"respect|stick to)\s+(?:the\s+|any\s+|your\s+|our\s+|these\s+|those\s+)?(?:[\w']+\s+)?"
    rf"(?:{_RULES}|polic(?:y|ies))\b",
    r"\b(?:what(?:ever)?|everything|anything) you (?:were|have been|'ve been) (?:told|given|"
    r"instructed)\b[^.!?]{0,30}\b(?:no longer|doesn't|does not|don't|do not|is void|is invalid)",
    rf"\b{_OVERRIDE}\s+(?:all\s+)?(?:of\s+)?(?:the\s+|everything\s+|anything\s+)?"
    r"(?:above|before|previous|prior|earlier)\b(?=\s*(?:$|[.,;:!]|and\b|then\b|instead\b|"
    r"text\b|content\b|messages?\b|lines?\b|paragraphs?\b))",
    rf"\b{_OVERRIDE}\s+(?:about\s+)?(?:everything|anything|all|what(?:ever)?)\s+"
    r"(?:you(?:'ve| have| were)?|above|before|previously|that was said|i said)\b",
    # the prompt, asked for
    r"\b(?:reveal|print|show|repeat|output|display|leak|dump|disclose|share|recite|spell out|"
    r"write out|tell me|give me|list|paste|copy|translate|summari[sz]e|what (?:are|is|were|"
    r"was))\b[^.!?]{0,30}?\b(?:your|the (?=system|hidden|initial|original|secret|internal|"
    r"developer)|(?=system|hidden|initial|original|secret|internal|developer))\s*(?:(?:system|"
    r"hidden|initial|original|secret|internal|developer|full|exact|entire|complete)\s+)*"
    r"(?:prompts?|instructions|rules|guidelines|directives|system message|configuration)\b",
    r"\b(?:reveal|print|show|repeat|output|display|leak|dump|disclose|share|include|respond|"
    r"reply|answer|write|copy|translate|give|tell)\b[^.!?]{0,40}\b(?:system prompt|system message|"
    r"initial prompt|hidden prompt|pre-?prompt|(?:hidden|initial|original|secret|internal) "
    r"instructions|instructions you were (?:given|initiali[sz]ed with|configured with))\b",
    r"\brepeat\b[^.!?]{0,20}\b(?:text|words|everything|content|lines?|messages?|prompt)\s+"
    r"(?:above|before)\b|\bstarting with [\"']?you are\b",
    # personas and modes
    r"\bpretend(?:ing)?\s+(?:to be|you(?:'re| are)|that you|you're)\b",
    r"(?:^|[,;:]\s*|\b(?:please|now|and|then|you (?:will|must|should|shall|are to|need to)|"
    r"want you to)\s+)act as (?!soon|quickly|fast)(?:an?\s|the\s|if\b|though\b|my\b|dan\b)",
    r"\b(?:role-?play|roleplay)\s+as\b|\bstay in character\b|\bbreak character\b",
    rf"\byou are (?:now|no longer|from now on)\s+(?:an?\s+|the\s+)?(?:[\w-]+\s+){{0,3}}?"
    rf"(?:{_MODEL}|character|persona|pirate|manager|admin|administrator|employee|human|dan|"
    r"version)\b",
    r"\byou are (?:now )?(?:in|running in|operating in|entering) [\w -]{0,20}\bmode\b",
    r"\byou are (?:now )?(?:no longer|not) (?:bound|restricted|limited|required)\b|"
    r"\byou are now (?:free|unrestricted|unfiltered|jailbroken|uncensored)\b",
    r"\byour new (?:role|identity|persona|name|purpose|goal|task|job|objective|mission|"
    r"instructions|rules|directives|prompt|system prompt)\b|\byour (?:role|identity|persona|"
    r"purpose) (?:is|will be) (?:now|to)\b",
    r"^(?!.*\b(?:iphone|ipad|phones?|devices?|ios|android|tablets?)\b).*\bjailbr(?:eak|oken)\b",
    r"\b(?:dan|god|unrestricted|unfiltered) mode\b|\bdo anything now\b|\bprompt injection\b",
    r"^(?!.*\b(?:phones?|devices?|hubs?|android|settings|tablets?|computers?|routers?|firmware|"
    r"usb|apps?)\b).*\bdeveloper mode\b",
    r"\b(?:respond|answer|reply|speak|talk)\w*\s+(?:without|with no)\s+(?:any\s+)?"
    r"(?:filters?|restrictions?|limits?|rules|censorship|guidelines)\b",
    # new instructions
    r"\bnew (?:instructions|rules|directives|system prompt|prompt|orders)\s*(?::|-|follow\b|"
    r"are as follows|below)|\b(?:here are|these are|following are|below are) (?:your |the )?"
    r"new (?:instructions|rules|directives)\b|\bupdated (?:system )?(?:instructions|prompt)\s*:",
    # "from now on" and orders about what the answer says
    r"\b(?:from now on|from here on|from this point(?: on| forward)?|henceforth|going forward|"
    r"for the rest of (?:this|the) conversation|until told otherwise)\b,?\s+"
    rf"(?:you\b[^.!?]{{0,30}}?\b(?:{_SAY}|confirm|inform|approve|grant|agree|mention|pretend|"
    r"act|obey|ignore|forget)\b|"
    rf"(?:always|never|only)\s+\w+|(?:{_SAY}|confirm|inform|approve|pretend|act)\b(?! us\b)|"
    rf"(?:the )?{_MODEL}\b)",
    rf"\b(?:always|never|only|must|should|shall)\s+(?:{_SAY})\b(?!\s+(?:your|you|us)\b)"
    r"(?!\s+(?:within|to (?:this|our|emails?|the survey)))",
    r"\b(?:every|each|all|your|the) (?:reply|replies|answers?|responses?)\b[^.!?]{0,20}\b(?:must|"
    r"should|shall|has to|have to|needs? to)\b",
    r"\b(?:begin|start|end|finish|open|close|sign)\s+(?:every|each|all|your|the)\s+(?:reply|"
    r"replies|answers?|responses?)\s+with\b",
    r"\b(?:answer|respond|reply|act|behave|write|speak)\s+as (?:if|though)\b",
    r"\b(?:should|must|shall|are to|is to) be (?:told|assured)\b|\b(?:should|must|shall) be "
    r"informed that\b",
    r"\byour (?:job|task|role|purpose|goal|duty|mission|objective) (?:is|will be) to\b",
    rf"\bas (?:the|a|an|our) (?:[\w-]+ )?{_MODEL}\b[^.!?]{{0,10}}\b(?:you|your)\b",
    rf"\bfor {_MODEL}s?(?:\s+(?:agents?|models?|assistants?|systems?|readers?))?\s+only\b",
    r"\b(?:your|the) (?:developers?|creators?|programmers?|makers?) (?:told|said|instructed|"
    r"programmed|wants?)\b|\b(?:developers?|creators?|programmers?|openai|anthropic) (?:told|"
    r"instructed|programmed|trained) you\b",
    r"\b(?:reply|respond|answer)\s+(?:only|exclusively)\s+(?:with|in|by)\b|\banswer (?:every|"
    r"each|all|any) (?:questions?|queries|messages?|requests?)\b",
    rf"\b(?:reply|respond|answer|say|state|explain|write|report)\b\s+(?:back\s+)?to\s+(?:the|"
    rf"every|each|all|any)\s+(?:{_PEOPLE}|people|questions?|queries|messages?)\s+(?:that|with|"
    r"by saying)\b",
    rf"\b(?:tell|inform|assure|notify|convince|reassure)\s+(?:the|every|each|all|any|our|this)\s+"
    rf"{_PEOPLE}\b|\b(?:tell|inform|assure)\s+{_PEOPLE}\s+that\b",
    r"^(?:please\s+)?(?:say|state|claim)\s+that\b",
    rf"\b(?:do not|don't|dont|never)\s+(?:ever\s+)?(?:tell|mention|reveal|disclose|say|inform|"
    rf"admit|bring up)\b[^.!?]{{0,30}}\b(?:{_PEOPLE}|the person|anyone asking)\b",
    rf"\bconfirm\b(?:\s+to\s+(?:the\s+)?{_PEOPLE})?\s+that\s+(?!you\b|your\b)"
    rf"[^.!?]{{0,60}}\b{_OUTCOME}",
    rf"\b(?:the|this|our|any|an?)\s+{_MODEL}\s+(?:must|should|shall|has to|needs to|is to|"
    r"is required to|will always|must always|should always|always|never|may only|can only)\b",
    # text addressed to a model
    rf"\b(?:note|message|attention|reminder|hey|hi|hello|dear)\s+(?:to\s+|for\s+)?(?:the\s+|"
    rf"any\s+|all\s+)?{_MODEL}s?\b",
    rf"\b{_MODEL}s?\s+(?:reading|processing|summari[sz]ing|parsing|answering from)\s+this\b",
    rf"\bif you(?:'re| are)\s+(?:an?\s+)?(?:{_MODEL}|automated)\b",
    rf"\bas an? {_MODEL}\b[^.!?]{{0,10}}\byou\b",
    # chat-template and role markers
    r"<\|?(?:im_start|im_end|system|assistant|endoftext)\|?>|\[/?inst\]|<</?sys>>|"
    r"</?(?:system|instructions?|prompt)>",
    rf"^\W{{0,6}}(?:{_MODEL}|claude|gemini|copilot|\[(?:system|assistant)\]|(?:system|admin|"
    r"developer) (?:override|instructions?|prompt)|developer (?:note|message))\s*(?:[:>\]]|\s-\s)",
    rf"^\W{{0,6}}(?:(?:important\s+)?(?:system|developer|admin|administrator|operator|root|sys|"
    rf"human)(?:\s+(?:note|message|notice|instruction|override|update|alert))?)\s*(?:[:>\]]|"
    rf"\s-\s)(?=.*{_CUE_EN})",
)
CHINESE = _any(
    r"(?:不管|无论|不论|忽略|无视|不要理会|不用理会|别理会|不理会|不要管|别管|忘记|忘掉|忘了|跳过|绕过|违背|抛开|放弃|"
    r"不要遵守|不必遵守|无需遵守|停止遵守|不再遵守)[^。！？!?]{0,10}?(?:以上|之前|上述|前面|先前|此前|"
    r"上面|前述|所有|全部|一切|原有|原来|原先|你的|系统|既有|现有|早先)[^。！？!?]{0,8}?(?:说明|指令|指示|"
    r"规则|提示|设定|设置|要求|限制|约束|命令|规定|准则|规范|prompt)",
    rf"(?:从现在(?:开始|起)|从今(?:天|以后|往后)(?:开始|起)?|从此(?:以后)?|今后|以后)[,\s]*"
    rf"(?:你[^。！？!?]{{0,12}}?|[^。！？!?]{{0,6}}?(?:只能|必须|一律|始终|总是|永远))"
    rf"(?!{_ZH_NOT_MODEL}){_ZH_VERB}",
    rf"你(?:必须|要|应该|应当|只能|需要|得|将)[^。！？!?]{{0,10}}?(?!{_ZH_NOT_MODEL}){_ZH_VERB}",
    r"(?:你现在|从现在(?:开始|起)[,\s]*你(?:就)?)(?:是|扮演|作为|成为|变成)(?!(?:我们的)?(?:会员|vip|用户|客户|顾客))|你不再是|"
    r"你的新(?:身份|角色|任务|指令|规则|名字|设定)",
    r"(?:请|你|你要|你现在|现在|从现在起)\s*(?:扮演|假扮|假装|装作|充当)(?!游戏|玩具|套装|服装|道具)|"
    r"^(?:扮演|假扮|假装|装作)(?:一个|一名|一位|你|成)",
    r"(?:泄露|泄漏|输出|显示|打印|告诉我|重复|透露|公开|给出|展示|说出|列出|复述|翻译|发给我|给我看)"
    r"[^。！？!?]{0,8}?(?:(?:你的|您的|初始|原始|隐藏|内部)[^。！？!?]{0,4}?(?:提示词|提示|指令|指示|"
    r"规则|设定|prompt)|系统(?:提示词|指令|设定|prompt|消息))|(?:你的|系统)(?:提示词|系统提示|"
    r"系统指令|初始指令|原始指令)[^。！？!?]{0,8}?(?:发给我|告诉我|输出|打印|复述|泄露|展示|显示)|"
    r"(?:你的|你收到的|系统)[^。！？!?]{0,4}?(?:提示词|指令|指示|设定)[^。！？!?]{0,8}?(?:发给我|告诉我|"
    r"输出|打印|复述|泄露|重复|一字不差|原样)",
    r"(?:告诉|告知)(?:客户|用户|顾客|买家|客人|消费者|每位|每个|所有)|(?:向|对)(?:客户|用户|顾客)"
    r"(?:声称|保证|承诺|表示)|不要(?:告诉|透露|提及|提到|说出|让)[^。！？!?]{0,4}?(?:客户|用户|顾客|买家)",
    r"(?:一律|统一|始终|总是|永远|都)(?:回答|回复|答复|声称)|"
    r"(?:回答|回复|答复)(?:中|里|时)[,\s]*(?:请)?(?:声明|声称|说明|表示|告诉|注明|写明|强调|说)|"
    r"(?:机器人|助手|ai|智能客服|人工智能|语言模型)(?:必须|应该|应当|只能|务必|一律)|"
    r"(?:机器人|助手|ai|人工智能|语言模型)[,\s]*请(?:注意|记住|务必)|(?:直接|一律)(?:回复|回答)\s*:|"
    r"(?:确认|批准|同意|通过)[^。！？!?]{0,6}?(?:所有|全部|每一?[个位笔]|任何)[^。！？!?]{0,4}?"
    r"(?:退款|退货|申请|要求|请求)",
    r"(?:以下|下面|这)是(?:你的)?新的?(?:指令|指示|规则|设定|任务|系统提示)|新的?(?:指令|指示|系统提示)\s*:",
    r"^(?!.*(?:手机|设备|设置|安卓|平板|电脑)).*(?:开发者|dan|上帝|无限制)模式|"
    r"^(?!.*(?:手机|设备|iphone|苹果|ios|安卓)).*越狱",
    r"(?:作为|如果你是)(?:一个|一名)?(?:ai|人工智能|语言模型|ai助手|助手|机器人)|"
    rf"(?:ai|人工智能|语言模型|助手|机器人)(?:必须|应该|应当|只能|要|需要){_ZH_VERB}",
    r"^\W{0,6}(?:ai|ai助手|助手|智能助手|机器人|客服机器人|chatgpt|gpt)\s*:",
    rf"^\W{{0,6}}(?:系统|开发者|管理员|系统消息|系统提示)\s*:(?=.*(?:{_CUE_ZH}))",
)
# Judged without spaces or punctuation, for text whose letters were spread apart.
SQUASHED = _any(
    r"(?:ignore|disregard|forget|override|bypass)(?:all|the|any|your|my|of)*(?:previous|prior|"
    r"above|earlier|preceding|system|original)(?:instructions?|rules|prompts?|guidelines|"
    r"directives)",
    r"(?:reveal|print|show|output|repeat|leak|dump)(?:me)?(?:your(?:system|hidden|initial|"
    r"original)?|the(?:system|hidden|initial|original))(?:prompt|instructions|rules)",
    r"doanythingnow|(?:忽略|无视)(?:以上|之前|上述|所有)(?:的)?(?:说明|指令|指示|规则|提示)",
)


_BASE64 = re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_-]{16,}={0,2}(?![\w+/=-])")


def decoded_payloads(text: str) -> list[str]:
    """The text hidden in ``text``'s base64-looking runs (16 characters or more, standard or
    URL-safe alphabet) that decode to UTF-8 text, at least 90% printable, with letters in it."""
    found = []
    for match in _BASE64.finditer(text):
        run = match.group()
        try:
            raw = base64.b64decode(run.replace("-", "+").replace("_", "/") + "=" * (-len(run) % 4),
                                   validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        shown = sum(c.isprintable() or c.isspace() for c in decoded)
        if shown >= 0.9 * len(decoded) and re.search(r"[^\W\d_]{2}", decoded):
            found.append(decoded)
    return found


def matches_patterns(sentence: str) -> bool:
    """Whether the patterns find ``sentence`` addressed to the model, or any text it hides
    in base64."""
    if _matches(sentence):
        return True
    return any(_matches(s) for payload in decoded_payloads(sentence)
               for s in split_sentences(payload))


def _matches(sentence: str) -> bool:
    judged = normalise(sentence)
    if not judged:
        return False
    leet, squashed = _variants(judged)
    return any(pattern.search(text) for text in {judged, leet}
               for pattern in (ENGLISH, CHINESE)) or bool(SQUASHED.search(squashed))


def looks_like_instruction(sentence: str) -> bool:
    """Whether ``sentence`` is addressed to the model rather than to the reader: the
    patterns, or the learned detector where there is one."""
    return instruction_flags([sentence])[0]


def instruction_flags(sentences: Sequence[str]) -> list[bool]:
    """For each of ``sentences`` (neighbours in one text), whether it reads as an instruction
    to the model: the patterns judge each; the learned detector, when trained, judges the rest
    (``InstructionModel.flags``), alone and as neighbouring pairs."""
    from knowledge.instructions import active

    flags = [matches_patterns(s) for s in sentences]
    model = active()
    return flags if model is None else model.flags(sentences, flags)


def instruction_sentences(text: str) -> list[str]:
    """The sentences of ``text`` that read as instructions to the model, as written (less
    invisible characters). HTML comments are judged too: the editor shows an author what
    hides there, though the index drops it."""
    sentences = split_sentences(clean_text(text))
    return [s for s, flag in zip(sentences, instruction_flags(sentences), strict=True) if flag]


@lru_cache(maxsize=2048)
def without_instructions(text: str) -> tuple[str, int]:
    """What a source may show: the text without invisible characters and HTML comments,
    with other people's e-mail addresses and phone numbers masked (``knowledge.pii``; import
    already did both, this covers what was indexed before), minus instruction-like
    sentences; and how many sentences were removed. Cached: every answer judges the chunks
    it cites, and the same few chunks answer most questions (``forget_judgements`` empties
    the cache when the detector changes)."""
    text = mask_personal_data(HTML_COMMENT.sub(" ", clean_text(text)))
    sentences = split_sentences(text)
    flags = instruction_flags(sentences)
    kept = [s for s, flag in zip(sentences, flags, strict=True) if not flag]
    return "\n".join(kept), sum(flags)


def forget_judgements() -> None:
    without_instructions.cache_clear()
