"""Commented starting points for new institutions, one per pattern, valid as written.

``--with`` features add the second edition's constructs to a pattern's template, each with
a comment saying what it does: a lot, a slate and its election, an office held for a term,
an overseer, a veto, abstention, a review's own words, one model per seat. The template is
edited as blocks (one per role and per stage), so every combination that fits the pattern
stays valid; one that cannot fit (a veto needs a vote on a motion) is refused, saying which
pattern has what it needs.

The name is written as a YAML double-quoted scalar, so any name loads back exactly (``yes``,
``123``, ``Rome: the Senate``, ``#1``, a line break); in the comments, where nothing can be
escaped, a character that could end the line or that YAML forbids becomes U+FFFD.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:  # the CLI lists the features in its help: keep this import light
    from govern.spec.models import Pattern

_HEADER = """\
{schema_line}# {name}: a {pattern} institution. Edit the roles and stages, then run
#   govern validate {hint}
# Every stage routes each decision it may return, plus 'unparsable', under next:.
# A route is a stage id, or {{to: STAGE, max_visits: N, exhausted: OTHER}}; every
# loop needs such a bound somewhere on it.
id: {id}
name: {quoted_name}
era: when and where it existed
pattern: {pattern}
history: >
  How the institution really worked: who proposed, who decided, who carried
  out, and how errors were caught.
"""

_BODIES: dict[str, str] = {
    "pipeline": """\
roles:
  - id: leader
    title: Leader
    instructions: Solve the problem step by step and state the answer to carry out.
  - id: official
    title: Official
    instructions: Turn the leader's answer into concrete, checked steps.
  - id: worker
    title: Worker
    instructions: Carry out the steps exactly and state the final answer.
entry: order
stages:
  - id: order
    kind: propose          # produces the first candidate answer
    role: leader
    purpose: Give the order with a worked answer.
    next:
      done: relay
      unparsable: {to: order, max_visits: 1, exhausted: relay}
  - id: relay
    kind: draft            # works the candidate into a new one
    role: official
    purpose: Pass the order on as concrete steps.
    next: {done: execution, unparsable: execution}
  - id: execution
    kind: execute          # produces the final answer
    role: worker
    purpose: Carry out the order and state the final answer.
    next: {done: finished, unparsable: finished}
  - id: finished
    kind: terminal         # outcome completed: the current candidate is the answer
""",
    "gated_pipeline": """\
roles:
  - id: drafter
    title: Drafter
    instructions: Draft a complete answer; when it comes back, answer every objection.
  - id: reviewer
    title: Reviewer
    instructions: Approve a sound draft; reject a flawed one with the precise reasons.
  - id: executor
    title: Executor
    instructions: Carry out the approved draft and state the final answer.
entry: draft
stages:
  - id: draft
    kind: draft
    role: drafter
    purpose: Draft the answer.
    next: {done: review, unparsable: review}
  - id: review
    kind: review           # a gate: approve, reject, amend or veto
    role: reviewer
    decisions: [approve, reject]
    purpose: Approve the draft or send it back with reasons.
    next:
      approve: execution
      reject: {to: draft, max_visits: 2, exhausted: execution}   # bounded send-back
      unparsable: execution
  - id: execution
    kind: execute
    role: executor
    purpose: Carry out the approved draft and state the final answer.
    next: {done: finished, unparsable: finished}
  - id: finished
    kind: terminal
""",
    "consensus": """\
roles:
  - id: proposer
    title: Proposer
    instructions: Put a complete, worked answer to the members.
  - id: member
    title: Member
    seats: 5               # five agents hold this role and each votes
    instructions: Vote for the proposal only if you are convinced its answer is right.
  - id: executor
    title: Executor
    instructions: State the final answer the members adopted.
entry: proposal
stages:
  - id: proposal
    kind: propose
    role: proposer
    purpose: Put a proposal with a worked answer.
    max_visits: 3          # a stage bound: the fourth visit goes to 'exhausted'
    exhausted: no_decision
    next: {done: vote, unparsable: proposal}
  - id: vote
    kind: vote
    voters: [member]
    rule: majority         # majority | supermajority (threshold) | unanimity | weighted
    quorum: 0.6            # share of valid ballots needed; adds the no_quorum decision
    tie_breaker: fail      # fail | pass | chair (with chair: ROLE)
    purpose: The members vote on the proposal.
    next:
      pass: execution
      fail: proposal
      no_quorum: proposal
      unparsable: proposal
  - id: execution
    kind: execute
    role: executor
    purpose: State the adopted answer.
    next: {done: adopted, unparsable: adopted}
  - id: adopted
    kind: terminal
  - id: no_decision
    kind: terminal
    outcome: rejected      # delivers no answer
""",
    "autonomous_cluster": """\
roles:
  - id: center
    title: Central authority
    instructions: Frame the problem for the units, with your own worked answer as guidance.
  - id: unit
    title: Autonomous unit
    seats: 3
    instructions: Solve the problem your own way, independently, and report your answer.
  - id: coordinator
    title: Coordinator
    instructions: Draw the units' reports together into one final answer.
entry: directive
stages:
  - id: directive
    kind: propose          # the orchestrating stage that dispatches the cluster
    role: center
    purpose: Frame the problem for the units.
    next: {done: units, unparsable: units}
  - id: units
    kind: cluster          # every seat of every member role works in parallel
    members: [unit]
    purpose: The units work in parallel and report.
    next: {done: synthesis, unparsable: synthesis}
  - id: synthesis
    kind: integrate        # synthesises several earlier outputs
    role: coordinator
    purpose: Draw the reports into one final answer.
    next: {done: finished, unparsable: finished}
  - id: finished
    kind: terminal
""",
}

_FOOTER = """\
policy:
  max_steps: 40          # stage runs per item before it is cut off
"""


def institution_id(name: str) -> str:
    """A valid id from a free-form name: 'Roman Senate' -> 'roman_senate', 'Athénée' ->
    'athenee'; a name with no letter or digit to keep gives 'institution', one that starts
    with a digit 'institution_...', so the id always matches the spec's pattern."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")
    if not slug or not slug[0].isalpha():
        slug = f"institution_{slug}"
    return slug[:64].rstrip("_")


def _escaped(char: str) -> bool:
    """Written as an escape: controls and line breaks (which would end or fold the line),
    format characters (bidi controls, the BOM), surrogates, unassigned code points."""
    return unicodedata.category(char)[0] == "C" or char in "\u2028\u2029"


_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def yaml_string(text: str) -> str:
    """``text`` as a YAML double-quoted scalar on one line, which loads back exactly; a lone
    surrogate (a byte of a command-line argument that is not UTF-8), which no YAML text can
    hold, is written as the text of its escape (``\\udcff``), as errors show it."""

    def one(char: str) -> str:
        if char in _SHORT_ESCAPES:
            return _SHORT_ESCAPES[char]
        if not _escaped(char):
            return char
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            return f"\\\\u{code:04x}"
        if code < 0x100:
            return f"\\x{code:02x}"
        return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

    return '"' + "".join(one(char) for char in text) + '"'


# Ids that plain YAML 1.1 (PyYAML) reads as a boolean or null, not as text.
_YAML_WORDS = frozenset({"yes", "no", "true", "false", "on", "off", "null"})


def _plain_or_quoted(identifier: str) -> str:
    """An id as written in the template: plain, unless YAML would read it as another type."""
    return yaml_string(identifier) if identifier in _YAML_WORDS else identifier


def _comment(text: str) -> str:
    """``text`` for a comment line: nothing can be escaped there, so each character that
    would be escaped in a string (one could end the line) becomes U+FFFD."""
    return "".join("\ufffd" if _escaped(char) else char for char in text)


Feature = Literal["lot", "slate", "office", "oversight", "veto", "abstain", "means", "seat-models"]
FEATURES: tuple[str, ...] = get_args(Feature)
FEATURE_HELP = {
    "lot": "a body drawn by lot (consensus, autonomous_cluster), or with office: the holder",
    "slate": "members nominate answers and elect one (consensus), or with office: an election",
    "office": "the first stage's role becomes an office held for a term, filled by lot or election",
    "oversight": "a censor who watches the final stage and may annul its result",
    "veto": "a tribune whose no vetoes the vote (consensus)",
    "abstain": "voters may abstain, and the vote needs at least 2 yes (consensus)",
    "means": "a review with a decision word of its own and its meaning (gated_pipeline)",
    "seat-models": "one model per seat of a role with several seats",
}
# Per pattern: the stage that starts the work, and the stage whose result is final.
_FIRST = {
    "pipeline": "order",
    "gated_pipeline": "draft",
    "consensus": "proposal",
    "autonomous_cluster": "directive",
}
_LAST = {
    "pipeline": "execution",
    "gated_pipeline": "execution",
    "consensus": "execution",
    "autonomous_cluster": "synthesis",
}
_MODELS = ("sim/strong", "sim/medium", "sim/weak")


class FeatureError(ValueError):
    """A feature that does not fit the pattern; the message says what would."""


class NameRefused(ValueError):
    """A name no institution can have; the message says why."""


@dataclass
class _Draft:
    """A template as blocks: one per role, one per stage, so features edit them by id."""

    roles: list[str]
    entry: str
    stages: list[str]
    oversight: str = ""

    @classmethod
    def parse(cls, body: str) -> _Draft:
        roles_text, rest = body.removeprefix("roles:\n").split("entry: ", 1)
        entry, stages_text = rest.split("\nstages:\n", 1)
        return cls(_blocks(roles_text), entry, _blocks(stages_text))

    def render(self) -> str:
        return (
            "roles:\n"
            + "".join(self.roles)
            + f"entry: {self.entry}\nstages:\n"
            + "".join(self.stages)
            + self.oversight
        )

    def index(self, blocks: list[str], block_id: str) -> int:
        return next(i for i, b in enumerate(blocks) if b.startswith(f"  - id: {block_id}\n"))

    def edit(self, blocks: list[str], block_id: str, old: str, new: str) -> None:
        """Replace ``old`` (which must be there) in one block."""
        i = self.index(blocks, block_id)
        if old not in blocks[i]:
            raise AssertionError(f"{old!r} is not in the template's '{block_id}'")
        blocks[i] = blocks[i].replace(old, new, 1)

    def reroute(self, old: str, new: str) -> None:
        """Send every route that leads to stage ``old`` to ``new`` instead."""
        pattern = re.compile(rf"(\b(?!(?:id|kind)\b)[a-z_]+: ){old}\b(?![:_])")
        self.stages = [
            b if b.startswith(f"  - id: {new}\n") else pattern.sub(rf"\g<1>{new}", b)
            for b in self.stages
        ]
        if self.entry == old:
            self.entry = new

    def add_terminal(self, stage_id: str, comment: str) -> None:
        if not any(b.startswith(f"  - id: {stage_id}\n") for b in self.stages):
            self.stages.append(
                f"  - id: {stage_id}\n    kind: terminal\n    outcome: rejected      # {comment}\n"
            )


def _blocks(text: str) -> list[str]:
    return [f"  - id: {b}" for b in text.split("  - id: ")[1:]]


def _role_of(draft: _Draft, stage_id: str) -> str:
    block = draft.stages[draft.index(draft.stages, stage_id)]
    found = re.search(r"^    role: (\w+)", block, re.MULTILINE)
    assert found, stage_id
    return found.group(1)


def _refuse(pattern: str, features: set[str]) -> None:
    """Refuse a feature the pattern cannot hold, saying which pattern can."""

    def needs(feature: str, what: str, patterns: str) -> None:
        if feature in features:
            article = "an" if pattern[0] in "aeiou" else "a"
            raise FeatureError(
                f"{feature} needs {what}, which {article} {pattern} has not: {patterns}"
            )

    if pattern != "consensus":
        for feature in ("veto", "abstain"):
            needs(feature, "a vote on a motion", "use --pattern consensus")
    if pattern != "gated_pipeline":
        needs("means", "a review stage", "use --pattern gated_pipeline")
    if "office" not in features:
        if pattern not in ("consensus", "autonomous_cluster"):
            needs("lot", "a body to draw", "use --pattern consensus, or add office")
        if pattern != "consensus":
            needs("slate", "members to nominate", "use --pattern consensus, or add office")
    if pattern == "pipeline":
        needs("slate", "a vote (a gate)", "use --pattern consensus")
    if {"lot", "veto"} <= features and pattern == "consensus":
        raise FeatureError(
            "veto and lot do not combine here: a veto needs its tribune among the voters, "
            "and the lot draws the voters; choose one"
        )


def _office(draft: _Draft, pattern: str, features: set[str]) -> None:
    first = draft.entry
    office = _role_of(draft, _FIRST[pattern])
    by_election = "slate" in features
    i = draft.index(draft.roles, office)
    draft.roles[i] += (
        "    office: {term: 10}    # an office: held for 10 items by the seat chosen to fill it\n"
    )
    draft.roles.append(
        "  - id: candidate\n    title: Candidate\n    seats: 5\n"
        "    instructions: Stand for office; when chosen, serve it faithfully.\n"
    )
    check = (
        "  - id: office_check\n"
        "    kind: office           # held: the office has holders in their term; vacant: fill it\n"
        f"    office: {office}\n"
        "    purpose: Is the office held?\n"
        f"    next: {{held: {first}, vacant: {'candidacy' if by_election else 'choosing'}}}\n"
    )
    if by_election:
        filling = [
            "  - id: candidacy\n"
            "    kind: nominate         # every candidate puts forward its own answer: the slate\n"
            "    nominees: [candidate]\n"
            "    purpose: Stand for office with your own worked answer.\n"
            "    next: {done: election, unparsable: unfilled}\n",
            "  - id: election\n"
            "    kind: vote\n"
            "    voters: [candidate]\n"
            "    rule: plurality        # plurality | approval | borda: ballots name candidates\n"
            "    slate: candidacy       # the nominate stage whose answers are the candidates\n"
            f"    fills: {office}          # the winner holds the office for its term\n"
            "    purpose: Elect the holder of the office from the slate.\n"
            f"    next: {{pass: {first}, fail: unfilled, unparsable: unfilled}}\n",
        ]
        draft.add_terminal("unfilled", "no one could be elected")
    else:
        filling = [
            "  - id: choosing\n"
            "    kind: lot              # draws seats at random, reproducibly from the run's seed\n"
            "    pool: [candidate]\n"
            "    draw: 1                # as many seats as the office has\n"
            f"    fills: {office}          # the seat drawn holds the office for its term\n"
            "    purpose: Draw the holder of the office by lot.\n"
            f"    next: {{done: {first}}}\n"
        ]
    draft.stages[:0] = [check, *filling]
    draft.entry = "office_check"


def _lot(draft: _Draft, pattern: str) -> None:
    """Draw the many-seat body by lot, afresh each time it acts."""
    consumer, field, role, seats = {
        "consensus": ("vote", "voters", "member", 3),
        "autonomous_cluster": ("units", "members", "unit", 2),
    }[pattern]
    # A cluster is dispatched straight from its orchestrating stage: draw before that.
    before = consumer if pattern == "consensus" else _FIRST[pattern]
    draft.reroute(before, "sortition")
    draft.stages.insert(
        draft.index(draft.stages, before),
        "  - id: sortition\n"
        "    kind: lot              # draws seats at random, reproducibly from the run's seed\n"
        f"    pool: [{role}]\n"
        f"    draw: {seats}                # {seats} seats of {role}, drawn afresh each time\n"
        f"    purpose: Draw the seats of {role} who act next.\n"
        f"    next: {{done: {before}}}\n",
    )
    draft.edit(
        draft.stages,
        consumer,
        f"    {field}: [{role}]\n",
        f"    {field}: {{chosen_by: sortition}}   # the seats the lot drew\n",
    )


def _slate(draft: _Draft) -> None:
    """Members nominate answers of their own and elect one, which is then put to the vote."""
    draft.stages[draft.index(draft.stages, "proposal")] = (
        "  - id: nomination\n"
        "    kind: nominate         # every member puts forward an answer of its own: the slate\n"
        "    nominees: [member]\n"
        "    purpose: Put forward your own worked answer.\n"
        "    max_visits: 3          # a stage bound: the fourth visit goes to 'exhausted'\n"
        "    exhausted: no_decision\n"
        "    next: {done: election, unparsable: nomination}\n"
        "  - id: election\n"
        "    kind: vote\n"
        "    voters: [member]\n"
        "    rule: plurality        # plurality | approval | borda: ballots name candidates\n"
        "    slate: nomination      # the nominate stage whose answers are the candidates\n"
        "    purpose: Choose the best answer on the slate, to put it to the vote.\n"
        "    next: {pass: vote, fail: nomination, unparsable: nomination}\n"
    )
    draft.stages = [b for block in draft.stages for b in _blocks(block)]
    draft.reroute("proposal", "nomination")
    del draft.roles[draft.index(draft.roles, "proposer")]


def _veto(draft: _Draft) -> None:
    draft.roles.append(
        "  - id: tribune\n    title: Tribune\n"
        "    instructions: Vote no on any proposal whose answer is wrong; your no is a veto.\n"
    )
    draft.edit(draft.stages, "vote", "    voters: [member]\n", "    voters: [member, tribune]\n")
    draft.edit(
        draft.stages,
        "vote",
        "    purpose:",
        "    veto_by: [tribune]     # one no from a tribune vetoes: the vote returns vetoed\n"
        "    purpose:",
    )
    draft.edit(
        draft.stages, "vote", "      unparsable:", "      vetoed: no_decision\n      unparsable:"
    )


def _abstain(draft: _Draft) -> None:
    draft.edit(
        draft.stages,
        "vote",
        "    purpose:",
        "    abstain: true          # VOTE: abstain counts toward the quorum, not yes or no\n"
        "    min_yes: 2             # besides the rule, at least 2 yes ballots\n"
        "    purpose:",
    )


def _means(draft: _Draft) -> None:
    draft.edit(
        draft.stages,
        "review",
        "    decisions: [approve, reject]\n",
        "    decisions: [approve, reject, annul]\n"
        "    means: {annul: veto}   # your own words, and what each does: approve | reject | "
        "amend | veto\n",
    )
    draft.edit(
        draft.stages, "review", "      unparsable:", "      annul: annulled\n      unparsable:"
    )
    draft.add_terminal("annulled", "delivers no answer")


def _oversight(draft: _Draft, pattern: str) -> None:
    draft.roles.append(
        "  - id: censor\n    title: Censor\n"
        "    instructions: Let a sound result stand; annul one that is wrong.\n"
    )
    draft.add_terminal("annulled", "delivers no answer")
    draft.oversight = (
        "oversight:                 # roles that watch stages and may intervene\n"
        "  - role: censor\n"
        f"    watches: [{_LAST[pattern]}]    # the stages watched, or all\n"
        "    rate: 1/2              # share of watched results examined, drawn from the seed\n"
        "    interventions: {annul: annulled}   # the overseer's words, and where each "
        "sends the item\n"
        "    max_interventions: 1   # interventions per item\n"
    )


def _seat_models(draft: _Draft) -> None:
    for i, block in enumerate(draft.roles):
        found = re.search(r"^    seats: (\d+).*\n", block, re.MULTILINE)
        if found and int(found.group(1)) > 1:
            models = ", ".join(_MODELS[n % len(_MODELS)] for n in range(int(found.group(1))))
            line = f"    models: [{models}]   # one model per seat, in seat order\n"
            draft.roles[i] = block[: found.end()] + line + block[found.end() :]
            return
    raise FeatureError(
        "seat-models needs a role with several seats: use --pattern consensus or "
        "autonomous_cluster, or add office (its candidates) or lot"
    )


def with_features(body: str, pattern: str, features: set[str]) -> str:
    """The pattern's template body with the features added (FeatureError if one cannot fit)."""
    unknown = sorted(features - set(FEATURES))
    if unknown:
        raise FeatureError(f"no feature {', '.join(unknown)}; features: {', '.join(FEATURES)}")
    _refuse(pattern, features)
    draft = _Draft.parse(body)
    if "slate" in features and "office" not in features:
        _slate(draft)
    if "veto" in features:
        _veto(draft)
    if "abstain" in features:
        _abstain(draft)
    if "lot" in features and pattern in ("consensus", "autonomous_cluster"):
        _lot(draft, pattern)
    if "office" in features:
        _office(draft, pattern, features)
    if "means" in features:
        _means(draft)
    if "oversight" in features:
        _oversight(draft, pattern)
    if "seat-models" in features:
        _seat_models(draft)
    return draft.render()


def scaffold_institution(
    name: str,
    pattern: Pattern,
    *,
    schema_ref: str | None = None,
    hint: str = "FILE",
    features: frozenset[str] = frozenset(),
) -> str:
    """The commented template of ``pattern`` for an institution called ``name`` (NameRefused
    if it is empty), with ``features`` added (FeatureError if one cannot fit)."""
    if not name:
        raise NameRefused("the name is empty; give the institution a name, e.g. 'Roman Senate'")
    schema_line = f"# yaml-language-server: $schema={_comment(schema_ref)}\n" if schema_ref else ""
    header = _HEADER.format(
        schema_line=schema_line,
        name=_comment(name),
        quoted_name=yaml_string(name),
        pattern=pattern,
        id=_plain_or_quoted(institution_id(name)),
        hint=_comment(hint),
    )
    body = _BODIES[pattern]
    if features:
        body = with_features(body, pattern, set(features))
        listed = ", ".join(f for f in FEATURES if f in features)
        header = header.replace(
            "\nid: ", f"\n# With: {listed} (see the comments beside them).\nid: ", 1
        )
    return header + body + _FOOTER
