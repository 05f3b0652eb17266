"""Commented starting points for new institutions, one per pattern, valid as written."""

from __future__ import annotations

import re

from govern.spec.models import Pattern

_HEADER = """\
{schema_line}# {name}: a {pattern} institution. Edit the roles and stages, then run
#   govern validate {hint}
# Every stage routes each decision it may return, plus 'unparsable', under next:.
# A route is a stage id, or {{to: STAGE, max_visits: N, exhausted: OTHER}}; every
# loop needs such a bound somewhere on it.
id: {id}
name: {name}
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
    """A valid id from a free-form name: 'Roman Senate' -> 'roman_senate'."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug or not slug[0].isalpha():
        slug = f"institution_{slug}".rstrip("_")
    return slug[:64]


def scaffold_institution(
    name: str, pattern: Pattern, *, schema_ref: str | None = None, hint: str = "FILE"
) -> str:
    schema_line = f"# yaml-language-server: $schema={schema_ref}\n" if schema_ref else ""
    header = _HEADER.format(
        schema_line=schema_line, name=name, pattern=pattern, id=institution_id(name), hint=hint
    )
    return header + _BODIES[pattern] + _FOOTER
