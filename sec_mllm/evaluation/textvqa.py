"""TextVQA scoring: the EvalAI / m4c answer normalisation and VQA accuracy, as LLaVA-1.5 reports it.

Normalisation (applied to the prediction and to each of the 10 human answers), step by step:
1. lower case; delete ``,`` and ``?``; ``'s`` -> `` 's``; strip;
2. newlines and tabs -> spaces; strip;
3. for each character of PUNCTUATION: deleted when it stands next to a space in the text (or the text
   has a digit,digit comma, which step 1 already removed), else replaced by a space; then periods not
   followed by a digit are removed (at most 32 of them: the reference passes ``re.UNICODE`` as the
   ``count`` argument);
4. split on whitespace; number words zero..ten and "none" -> digits; drop a / an / the; map the
   apostrophe-less contractions of CONTRACTIONS; join with single spaces.

Accuracy of a prediction p against 10 answers: the mean over the 10 leave-one-out subsets of
``min(1, matches among the other 9 / 3)``, so 0 / 0.3 / 0.6 / 0.9 / 1.0 for 0 / 1 / 2 / 3 / 4+ matches.

Matching answers to questions follows LLaVA's eval_textvqa (image id + lower-cased question from the
prompt's first line, or the second when the prompt starts with the OCR line); answers that carry the real
``textvqa_question_id`` are matched by it instead.
"""

from __future__ import annotations

import re
from typing import Any

from ..files import iter_jsonl, read_json, require_keys

PUNCTUATION = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
NUMBER_WORDS = {w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten".split())} | {
    "none": "0"
}
ARTICLES = frozenset({"a", "an", "the"})
# Apostrophe-less spelling -> spelling with apostrophes, as in the VQA evaluation. Four keys carry
# capitals and can never match lower-cased text; they are kept for parity with the reference.
_CONTRACTION_PAIRS = """
aint ain't|arent aren't|cant can't|couldve could've|couldnt couldn't|couldn'tve couldn't've
couldnt've couldn't've|didnt didn't|doesnt doesn't|dont don't|hadnt hadn't|hadnt've hadn't've
hadn'tve hadn't've|hasnt hasn't|havent haven't|hed he'd|hed've he'd've|he'dve he'd've|hes he's
howd how'd|howll how'll|hows how's|Id've I'd've|I'dve I'd've|Im I'm|Ive I've|isnt isn't|itd it'd
itd've it'd've|it'dve it'd've|itll it'll|let's let's|maam ma'am|mightnt mightn't
mightnt've mightn't've|mightn'tve mightn't've|mightve might've|mustnt mustn't|mustve must've
neednt needn't|notve not've|oclock o'clock|oughtnt oughtn't|ow's'at 'ow's'at|'ows'at 'ow's'at
'ow'sat 'ow's'at|shant shan't|shed've she'd've|she'dve she'd've|she's she's|shouldve should've
shouldnt shouldn't|shouldnt've shouldn't've|shouldn'tve shouldn't've|somebody'd somebodyd
somebodyd've somebody'd've|somebody'dve somebody'd've|somebodyll somebody'll|somebodys somebody's
someoned someone'd|someoned've someone'd've|someone'dve someone'd've|someonell someone'll
someones someone's|somethingd something'd|somethingd've something'd've|something'dve something'd've
somethingll something'll|thats that's|thered there'd|thered've there'd've|there'dve there'd've
therere there're|theres there's|theyd they'd|theyd've they'd've|they'dve they'd've|theyll they'll
theyre they're|theyve they've|twas 'twas|wasnt wasn't|wed've we'd've|we'dve we'd've|weve we've
werent weren't|whatll what'll|whatre what're|whats what's|whatve what've|whens when's|whered where'd
wheres where's|whereve where've|whod who'd|whod've who'd've|who'dve who'd've|wholl who'll|whos who's
whove who've|whyll why'll|whyre why're|whys why's|wont won't|wouldve would've|wouldnt wouldn't
wouldnt've wouldn't've|wouldn'tve wouldn't've|yall y'all|yall'll y'all'll|y'allll y'all'll
yall'd've y'all'd've|y'alld've y'all'd've|y'all'dve y'all'd've|youd you'd|youd've you'd've
you'dve you'd've|youll you'll|youre you're|youve you've
"""
CONTRACTIONS = dict(pair.split() for pair in _CONTRACTION_PAIRS.replace("\n", "|").split("|") if pair.strip())
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_DIGIT_COMMA = re.compile(r"(?<=\d)(\,)+(?=\d)")
OCR_LINE = "Reference OCR token: "


def normalize_answer(text: str) -> str:
    """EvalAI / m4c normalisation of one answer (see the module docstring)."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    original = text
    for p in PUNCTUATION:
        if p + " " in original or " " + p in original or _DIGIT_COMMA.search(original) is not None:
            text = text.replace(p, "")
        else:
            text = text.replace(p, " ")
    text = _PERIOD.sub("", text, count=32)
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES]
    return " ".join(words)


def vqa_accuracy(prediction: str, answers: list[str]) -> float:
    """Leave-one-out VQA accuracy of ``prediction`` against exactly 10 human answers."""
    if len(answers) != 10:
        raise ValueError(f"VQA accuracy needs exactly 10 answers, got {len(answers)}")
    pred = normalize_answer(prediction)
    gold = [normalize_answer(a) for a in answers]
    matches = [g == pred for g in gold]
    total = sum(matches)
    return sum(min(1.0, (total - m) / 3) for m in matches) / len(gold)


def drop_ocr_line(row: dict[str, Any]) -> dict[str, Any]:
    """A question row without its 'Reference OCR token:' line, keeping LLaVA's two-line prompt shape."""
    lines = [line for line in row["text"].split("\n") if not line.startswith(OCR_LINE.strip())]
    return {**row, "text": "\n".join(lines)}


def question_from_prompt(prompt: str) -> str:
    """The question LLaVA's eval_textvqa recovers from a prompt, lower-cased."""
    if prompt.startswith("OCR tokens: "):
        match = re.search(r"Question: (.*?) Short answer:", prompt)
        if match is None:
            raise ValueError(f"cannot find the question in prompt {prompt!r}")
        return match.group(1).lower()
    lines = prompt.split("\n")
    if OCR_LINE in prompt and len(lines) == 3:
        return (lines[1] if prompt.startswith(OCR_LINE.strip()) else lines[0]).lower()
    if len(lines) == 2:
        return lines[0].lower()
    raise ValueError(f"prompt must have 2 lines (no OCR) or 3 lines (with OCR tokens), got {len(lines)}: {prompt!r}")


def index_annotations(items: list[dict[str, Any]]) -> tuple[dict[Any, dict], dict[tuple[str, str], dict]]:
    """Annotations by real question id and by (image id, lower-cased question), as LLaVA's matcher keys them."""
    return {d["question_id"]: d for d in items}, {(d["image_id"], d["question"].lower()): d for d in items}


def find_annotation(rec: dict[str, Any], by_id: dict, by_key: dict, where: str) -> dict[str, Any]:
    """The annotation an answer row refers to: by ``textvqa_question_id`` if present, else LLaVA's key."""
    require_keys(rec, ("question_id", "text"), where)
    if "textvqa_question_id" in rec:
        item = by_id.get(rec["textvqa_question_id"])
        if item is None:
            raise ValueError(f"{where}: unknown TextVQA question id {rec['textvqa_question_id']!r}")
        return item
    require_keys(rec, ("prompt",), where)
    key = (rec["question_id"], question_from_prompt(rec["prompt"]))
    if key not in by_key:
        raise ValueError(f"{where}: no annotation for image {key[0]!r} and question {key[1]!r}")
    return by_key[key]


def score_textvqa(
    answers_file: str, annotation_file: str | list[dict[str, Any]], allow_missing: bool = False
) -> dict[str, Any]:
    """Score a LLaVA-format answers JSONL against TextVQA_0.5.1_val.json (or its ``data`` list itself, e.g.
    from hf_sets.TextVqaDataset.annotations).

    Each answer line is matched by ``textvqa_question_id`` when present, else by (``question_id`` = image
    id, question from ``prompt``). Unknown or duplicate answers raise naming the line; every annotated
    question must be answered unless ``allow_missing``.
    """
    if isinstance(annotation_file, list):
        items = annotation_file
    else:
        data = read_json(annotation_file)
        if not isinstance(data, dict) or "data" not in data:
            raise ValueError(f"{annotation_file}: expected a TextVQA file with a top-level 'data' list")
        items = data["data"]
    by_id, by_key = index_annotations(items)
    scores: dict[Any, float] = {}
    for lineno, rec in iter_jsonl(answers_file):
        where = f"{answers_file}:{lineno}"
        item = find_annotation(rec, by_id, by_key, where)
        if item["question_id"] in scores:
            raise ValueError(f"{where}: second answer for TextVQA question {item['question_id']}")
        scores[item["question_id"]] = vqa_accuracy(rec["text"], item["answers"])
    missing = [qid for qid in by_id if qid not in scores]
    if missing and not allow_missing:
        raise ValueError(
            f"{len(missing)} annotated question(s) have no answer, e.g. {missing[:5]}; "
            "pass allow_missing=True (--allow-missing) to score what exists"
        )
    values = list(scores.values())
    return {
        "accuracy": 100.0 * sum(values) / len(values) if values else 0.0,
        "num_questions": len(values),
        "num_missing": len(missing),
    }
