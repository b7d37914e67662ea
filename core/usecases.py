"""Use-case templates: the business defaults behind each what-if analysis.

Each template is a frozen `UseCase` holding a payoff matrix, volumes, capacity, today's policy,
costs and the discount horizon. Every default comes with a one-line source or rationale in
`sources` (keyed by dotted path, e.g. "payoff.fn"), and says "assumption" where it is one, so
an analyst can see which numbers to challenge. Pure data and validation: no I/O.

Payoff convention (see core/economics.py): a cell is the $ one decision brings on one case,
against a reference that does not depend on the decision. The positive prediction is the
flagged decision. With a money column, value per row = money_fixed + money_multipliers x amount.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from core.economics import STATUS_QUO_POLICIES, Payoff, StatusQuoPolicy
from core.economics import check_number as _number


@dataclass(frozen=True)
class StatusQuo:
    """Today's policy, which the model must beat.

    policy: "approve_all" (flag nobody), "flag_all", "manual_review" (a person decides each
    case, assumed perfectly, at cost_per_decision $) or "rule" (an existing rule's decisions).
    """

    policy: StatusQuoPolicy
    cost_per_decision: float = 0.0

    def __post_init__(self) -> None:
        if self.policy not in STATUS_QUO_POLICIES:
            raise ValueError(
                f"status_quo.policy must be one of {STATUS_QUO_POLICIES}; got {self.policy=}"
            )
        cost = _number(self.cost_per_decision, "status_quo.cost_per_decision", low=0.0)
        object.__setattr__(self, "cost_per_decision", cost)


@dataclass(frozen=True)
class OneOffCosts:
    """$ spent once before the model earns anything."""

    integration: float
    labelling: float

    def __post_init__(self) -> None:
        for name in ("integration", "labelling"):
            value = _number(getattr(self, name), f"one_off_costs.{name}", low=0.0)
            object.__setattr__(self, name, value)

    @property
    def total(self) -> float:
        return self.integration + self.labelling


@dataclass(frozen=True)
class RunningCosts:
    """People costs per year of keeping the model; compute is priced apart (economics)."""

    maintenance_per_year: float
    retrains_per_year: float
    cost_per_retrain: float

    def __post_init__(self) -> None:
        for name in ("maintenance_per_year", "retrains_per_year", "cost_per_retrain"):
            value = _number(getattr(self, name), f"running_costs.{name}", low=0.0)
            object.__setattr__(self, name, value)

    @property
    def per_month(self) -> float:
        return (self.maintenance_per_year + self.retrains_per_year * self.cost_per_retrain) / 12


# UseCase fields that hold a small dataclass; edits and JSON reach into them by field name.
_NESTED_TYPES: dict[str, type] = {
    "payoff": Payoff,
    "money_multipliers": Payoff,
    "money_fixed": Payoff,
    "status_quo": StatusQuo,
    "one_off_costs": OneOffCosts,
    "running_costs": RunningCosts,
}


@dataclass(frozen=True)
class UseCase:
    """One business decision that a binary model can support, with editable defaults."""

    key: str
    title: str
    task: str
    description: str
    positive_decision: str
    negative_decision: str
    payoff: Payoff
    money_column_hint: str | None
    money_multipliers: Payoff | None
    money_fixed: Payoff | None
    monthly_volume: float
    review_capacity: int | None
    status_quo: StatusQuo
    one_off_costs: OneOffCosts
    running_costs: RunningCosts
    discount_rate_per_year: float
    horizon_months: int
    sources: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("key", "title", "positive_decision", "negative_decision"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(
                    f"{name} must be a non-empty string; got {name}={getattr(self, name)!r}"
                )
        if self.task != "binary":
            raise ValueError(
                f"task must be 'binary' (multiclass is reduced to one-vs-rest); got {self.task=}"
            )
        self._check_nested_types()
        self._check_money_mode()
        volume = _number(self.monthly_volume, "monthly_volume", low=0.0)
        object.__setattr__(self, "monthly_volume", volume)
        object.__setattr__(self, "review_capacity", _capacity(self.review_capacity))
        rate = _number(self.discount_rate_per_year, "discount_rate_per_year", low=0.0)
        if rate >= 1:
            raise ValueError(
                f"discount_rate_per_year must be in [0, 1); got discount_rate_per_year={rate!r}"
            )
        object.__setattr__(self, "discount_rate_per_year", rate)
        object.__setattr__(self, "horizon_months", _whole(self.horizon_months, "horizon_months"))
        object.__setattr__(self, "sources", dict(self.sources))

    def _check_nested_types(self) -> None:
        for name, kind in _NESTED_TYPES.items():
            value = getattr(self, name)
            optional = name in ("money_multipliers", "money_fixed")
            if not isinstance(value, kind) and not (optional and value is None):
                raise ValueError(f"{name} must be a {kind.__name__}; got {name}={value!r}")

    def _check_money_mode(self) -> None:
        """A money column needs both its multipliers and its fixed part, or neither."""
        given = [
            self.money_column_hint is not None,
            self.money_multipliers is not None,
            self.money_fixed is not None,
        ]
        if any(given) and not all(given):
            raise ValueError(
                "money_column_hint, money_multipliers and money_fixed must be all set or all "
                f"None; got {self.money_column_hint=}, {self.money_multipliers=}, {self.money_fixed=}"
            )

    def assumptions(self) -> dict[str, Any]:
        """Every editable default as {dotted path: value}, e.g. {"payoff.fn": -4500.0, ...}."""
        flat: dict[str, Any] = {}
        for name in _ASSUMPTION_FIELDS:
            value = getattr(self, name)
            if name in _NESTED_TYPES and value is not None:
                flat.update({f"{name}.{k}": v for k, v in asdict(value).items()})
            elif name not in _NESTED_TYPES:
                flat[name] = value
        return flat

    def with_overrides(self, **changes: Any) -> UseCase:
        """An edited, validated copy; sources of changed values say they were edited.

        Keys are field names (`monthly_volume=8000`), dotted paths into nested parts
        (`**{"payoff.fn": -5000}`), or a nested field with a whole object or a partial mapping
        (`payoff={"fn": -5000}`). Unknown names raise ValueError.
        """
        edited = replace(self, **_resolve_changes(self, changes))
        before, after = self.assumptions(), edited.assumptions()
        sources = dict(edited.sources)
        for path, value in after.items():
            if path not in before or before[path] != value:
                sources[path] = f"edited by the analyst (was {before.get(path)!r})"
        object.__setattr__(edited, "sources", sources)
        return edited

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (plain dicts, floats, ints, strings, None), for saved scenarios."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UseCase:
        """Inverse of `to_dict`; unknown or missing keys raise ValueError."""
        names = {f.name for f in fields(cls)}
        unknown, missing = set(data) - names, names - set(data) - {"sources"}
        if unknown or missing:
            raise ValueError(
                f"use case data: unknown keys {sorted(unknown)}, missing {sorted(missing)}"
            )
        values = dict(data)
        for name, kind in _NESTED_TYPES.items():
            if values[name] is not None:
                values[name] = _build(kind, values[name], name)
        return cls(**values)


_ASSUMPTION_FIELDS = (
    "payoff",
    "money_multipliers",
    "money_fixed",
    "monthly_volume",
    "review_capacity",
    "status_quo",
    "one_off_costs",
    "running_costs",
    "discount_rate_per_year",
    "horizon_months",
)


def _build(kind: type, data: Any, name: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{name} must be a mapping of its fields; got {name}={data!r}")
    allowed = {f.name for f in fields(kind)}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"{name} has unknown fields {sorted(unknown)}; allowed {sorted(allowed)}")
    try:
        return kind(**data)
    except TypeError as exc:  # a required field is missing
        raise ValueError(f"{name}: {exc}") from exc


def _resolve_changes(use_case: UseCase, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Turn dotted paths and partial mappings into whole replacement field values."""
    names = {f.name for f in fields(UseCase)}
    grouped: dict[str, Any] = {}
    partial: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if head not in names or (rest and head not in _NESTED_TYPES):
            raise ValueError(f"unknown use-case field {key!r}; known: {sorted(names)}")
        if rest:
            partial.setdefault(head, {})[rest] = value
        elif head in _NESTED_TYPES and isinstance(value, Mapping):
            partial.setdefault(head, {}).update(value)
        else:
            grouped[head] = value
    for head, updates in partial.items():
        current = grouped.get(head, getattr(use_case, head))
        base = {} if current is None else asdict(current)
        grouped[head] = _build(_NESTED_TYPES[head], {**base, **updates}, head)
    return grouped


def _whole(value: Any, name: str) -> int:
    number = _number(value, name, low=1.0)
    if not float(number).is_integer():
        raise ValueError(f"{name} must be a whole number >= 1; got {name}={value!r}")
    return int(number)


def _capacity(value: Any) -> int | None:
    """Reviews per month, or None for no limit; fractions round down (no half reviews)."""
    if value is None:
        return None
    return math.floor(_number(value, "review_capacity", low=1.0))


# --------------------------------------------------------------------------- templates

_RATE = "10%: a typical corporate hurdle rate / cost of capital (8-12%) — assumption, edit"
_HORIZON = "36 months: a usual planning horizon for an analytics project — assumption, edit"
_UPKEEP = "~20% of integration per year, a common rule of thumb for software upkeep — assumption"
_NO_FIXED = "0: no per-row cost depends on the decision here — assumption"


def _credit() -> UseCase:
    return UseCase(
        key="credit_scoring",
        title="Credit scoring (loan default)",
        task="binary",
        description="Predict which applicants will default; decline those above the threshold.",
        positive_decision="decline the loan",
        negative_decision="approve the loan",
        payoff=Payoff(tp=0.0, fp=0.0, tn=400.0, fn=-4500.0),
        money_column_hint="loan amount",
        money_multipliers=Payoff(tp=0.0, fp=0.0, tn=0.04, fn=-0.45),
        money_fixed=Payoff(tp=0.0, fp=0.0, tn=0.0, fn=0.0),
        monthly_volume=5000,
        review_capacity=None,
        status_quo=StatusQuo("approve_all"),
        one_off_costs=OneOffCosts(integration=40000.0, labelling=0.0),
        running_costs=RunningCosts(
            maintenance_per_year=8000.0, retrains_per_year=2, cost_per_retrain=3000.0
        ),
        discount_rate_per_year=0.10,
        horizon_months=36,
        sources={
            "payoff.tp": "0: a declined applicant brings nothing (reference = not lending); "
            "adding the avoided loss here as well as on fn would count it twice",
            "payoff.fp": "0: the margin a good applicant would have paid shows as the gap to tn",
            "payoff.tn": "+$400 = 4% lifetime net margin x $10,000 typical loan — both assumptions",
            "payoff.fn": "-$4,500 = LGD 45% x $10,000: 45% is the Basel II foundation-IRB LGD for "
            "senior unsecured claims; the loan size is an assumption",
            "money_multipliers.tp": "0 x amount: declined, nothing lent",
            "money_multipliers.fp": "0 x amount: declined, nothing lent",
            "money_multipliers.tn": "+4% of the amount: lifetime net interest margin after "
            "funding and servicing — assumption, edit",
            "money_multipliers.fn": "-45% of the amount: Basel II foundation-IRB LGD, senior "
            "unsecured",
            "money_fixed.tp": _NO_FIXED,
            "money_fixed.fp": _NO_FIXED,
            "money_fixed.tn": _NO_FIXED,
            "money_fixed.fn": _NO_FIXED,
            "monthly_volume": "5,000 applications a month: a mid-size consumer lender — assumption",
            "review_capacity": "None: declines are automatic, no review queue limits them — "
            "assumption",
            "status_quo.policy": "approve_all: lend to every applicant in the data (they already "
            "passed today's policy rules), so the model is valued on top of them — assumption; "
            "use 'rule' to compare with a scorecard's decisions",
            "status_quo.cost_per_decision": "0: no extra review today — assumption",
            "one_off_costs.integration": "$40,000: ~2 engineer-months fully loaded for the "
            "decision-engine hook-up and model-risk documentation — assumption",
            "one_off_costs.labelling": "0: labels are observed defaults in the loan book",
            "running_costs.maintenance_per_year": f"$8,000: {_UPKEEP}",
            "running_costs.retrains_per_year": "2: semi-annual refresh, usual for application "
            "scorecards under model-risk review — assumption",
            "running_costs.cost_per_retrain": "$3,000: validation and sign-off time (compute is "
            "priced separately) — assumption",
            "discount_rate_per_year": _RATE,
            "horizon_months": _HORIZON,
        },
    )


def _fraud() -> UseCase:
    return UseCase(
        key="fraud",
        title="Payment fraud",
        task="binary",
        description="Predict which card-not-present payments are fraudulent; block those.",
        positive_decision="block the payment",
        negative_decision="approve the payment",
        payoff=Payoff(tp=0.0, fp=-5.0, tn=10.0, fn=-100.0),
        money_column_hint="transaction amount",
        money_multipliers=Payoff(tp=0.0, fp=-0.05, tn=0.10, fn=-1.0),
        money_fixed=Payoff(tp=0.0, fp=0.0, tn=0.0, fn=0.0),
        monthly_volume=200000,
        review_capacity=None,
        status_quo=StatusQuo("approve_all"),
        one_off_costs=OneOffCosts(integration=60000.0, labelling=0.0),
        running_costs=RunningCosts(
            maintenance_per_year=12000.0, retrains_per_year=12, cost_per_retrain=1000.0
        ),
        discount_rate_per_year=0.10,
        horizon_months=36,
        sources={
            "payoff.tp": "0: blocked fraud ships nothing and draws no chargeback (reference = "
            "no sale)",
            "payoff.fp": "-$5: a blocked good customer; the lost sale shows as the gap to tn, "
            "plus 5% of a $100 ticket for customers who leave after a false decline — assumption",
            "payoff.tn": "+$10 = 10% net margin on a $100 typical online sale — assumptions",
            "payoff.fn": "-$100: goods at cost (~90%) plus a chargeback fee (~10%) on a $100 "
            "sale; for card-not-present fraud the merchant usually bears the chargeback — "
            "amounts are assumptions",
            "money_multipliers.tp": "0 x amount: nothing shipped, nothing charged back",
            "money_multipliers.fp": "-5% of the amount: customers lost to false declines — "
            "assumption",
            "money_multipliers.tn": "+10% of the amount: net margin on the sale — assumption",
            "money_multipliers.fn": "-100% of the amount: goods at cost plus chargeback fee — "
            "assumption",
            "money_fixed.tp": _NO_FIXED,
            "money_fixed.fp": _NO_FIXED,
            "money_fixed.tn": _NO_FIXED,
            "money_fixed.fn": _NO_FIXED,
            "monthly_volume": "200,000 payments a month — assumption, edit",
            "review_capacity": "None: blocks are automatic; set a number if blocked payments go "
            "to a review queue — assumption",
            "status_quo.policy": "approve_all: no screening today — assumption; use 'rule' with "
            "an existing rules engine's decisions when you have them",
            "status_quo.cost_per_decision": "0: no review today — assumption",
            "one_off_costs.integration": "$60,000: ~3 engineer-months to score in the real-time "
            "payment path — assumption",
            "one_off_costs.labelling": "0: labels come from chargebacks and fraud reports",
            "running_costs.maintenance_per_year": f"$12,000: {_UPKEEP}",
            "running_costs.retrains_per_year": "12: monthly, as fraud patterns drift quickly — "
            "assumption",
            "running_costs.cost_per_retrain": "$1,000: checking and releasing a retrain (compute "
            "priced separately) — assumption",
            "discount_rate_per_year": _RATE,
            "horizon_months": _HORIZON,
        },
    )


def _churn() -> UseCase:
    return UseCase(
        key="churn",
        title="Customer churn (retention offer)",
        task="binary",
        description="Predict which customers will leave; call them with a retention offer.",
        positive_decision="call with a retention offer",
        negative_decision="do not contact",
        payoff=Payoff(tp=100.0, fp=-25.0, tn=0.0, fn=0.0),
        money_column_hint="customer value over the next 12 months",
        money_multipliers=Payoff(tp=0.25, fp=0.0, tn=0.0, fn=0.0),
        money_fixed=Payoff(tp=-25.0, fp=-25.0, tn=0.0, fn=0.0),
        monthly_volume=50000,
        review_capacity=2000,
        status_quo=StatusQuo("approve_all"),
        one_off_costs=OneOffCosts(integration=20000.0, labelling=0.0),
        running_costs=RunningCosts(
            maintenance_per_year=4000.0, retrains_per_year=4, cost_per_retrain=1500.0
        ),
        discount_rate_per_year=0.10,
        horizon_months=36,
        sources={
            "payoff.tp": "+$100 = 25% of called churners stay x $500 12-month customer value, "
            "minus $25 offer and call — save rate and value are assumptions, edit",
            "payoff.fp": "-$25: a $20 retention credit (typical telco credit, assumption) and a "
            "$5 call (~5 agent-minutes, assumption) spent on a customer who would have stayed",
            "payoff.tn": "0: reference = no contact; a stayer left alone costs nothing",
            "payoff.fn": "0: a churner not called leaves exactly as under the reference",
            "money_multipliers.tp": "+25% of the customer value: the save rate of a retention "
            "call — assumption; published save rates vary widely",
            "money_multipliers.fp": "0 x value: the customer stays anyway",
            "money_multipliers.tn": "0 x value: no contact, no change",
            "money_multipliers.fn": "0 x value: no contact, no change",
            "money_fixed.tp": "-$25: $20 offer + $5 call — assumption",
            "money_fixed.fp": "-$25: $20 offer + $5 call — assumption",
            "money_fixed.tn": "0: no contact",
            "money_fixed.fn": "0: no contact",
            "monthly_volume": "50,000 customers scored a month — assumption",
            "review_capacity": "2,000 calls a month: 10 retention agents x 10 calls a day x 20 "
            "days — assumption",
            "status_quo.policy": "approve_all: no proactive retention calls today — assumption",
            "status_quo.cost_per_decision": "0: no calls today",
            "one_off_costs.integration": "$20,000: ~1 engineer-month to feed call lists to the "
            "CRM — assumption",
            "one_off_costs.labelling": "0: churn is observed in billing data",
            "running_costs.maintenance_per_year": f"$4,000: {_UPKEEP}",
            "running_costs.retrains_per_year": "4: quarterly refresh — assumption",
            "running_costs.cost_per_retrain": "$1,500: checking and releasing a retrain — "
            "assumption",
            "discount_rate_per_year": _RATE,
            "horizon_months": _HORIZON,
        },
    )


def _healthcare() -> UseCase:
    return UseCase(
        key="healthcare_triage",
        title="Healthcare triage (refer to a clinician)",
        task="binary",
        description="Predict which patients need a clinician's review; refer those. Money "
        "figures stand in for harm and need clinical governance, not only this number.",
        positive_decision="refer to a clinician",
        negative_decision="routine pathway",
        payoff=Payoff(tp=-150.0, fp=-150.0, tn=0.0, fn=-5000.0),
        money_column_hint=None,
        money_multipliers=None,
        money_fixed=None,
        monthly_volume=10000,
        review_capacity=800,
        status_quo=StatusQuo("manual_review", cost_per_decision=15.0),
        one_off_costs=OneOffCosts(integration=80000.0, labelling=20000.0),
        running_costs=RunningCosts(
            maintenance_per_year=16000.0, retrains_per_year=1, cost_per_retrain=10000.0
        ),
        discount_rate_per_year=0.10,
        horizon_months=36,
        sources={
            "payoff.tp": "-$150: a clinician review (~30 specialist-minutes) — assumption; the "
            "treatment itself is the reference, due either way",
            "payoff.fp": "-$150: the same review for a patient who did not need it — assumption",
            "payoff.tn": "0: reference = routine pathway for a patient who needs nothing more",
            "payoff.fn": "-$5,000: extra cost and harm (in money) of a condition caught late — "
            "assumption; it varies by orders of magnitude by condition, set it with clinical "
            "and health-economics leads",
            "monthly_volume": "10,000 patients a month — assumption",
            "review_capacity": "800 referrals a month: clinician slots — assumption",
            "status_quo.policy": "manual_review: nurse triage of every patient, assumed perfect, "
            "so the model's gain over it is understated — assumption",
            "status_quo.cost_per_decision": "$15: ~10 nurse-minutes at ~$90/h fully loaded — "
            "assumption",
            "one_off_costs.integration": "$80,000: EHR integration and a clinical safety case — "
            "assumption",
            "one_off_costs.labelling": "$20,000: 2,000 charts reviewed at $10 each — assumption",
            "running_costs.maintenance_per_year": f"$16,000: {_UPKEEP}",
            "running_costs.retrains_per_year": "1: each retrain needs clinical re-validation — "
            "assumption",
            "running_costs.cost_per_retrain": "$10,000: clinical re-validation of a retrain — "
            "assumption",
            "discount_rate_per_year": _RATE,
            "horizon_months": _HORIZON,
        },
    )


def _manufacturing() -> UseCase:
    return UseCase(
        key="manufacturing_quality",
        title="Manufacturing quality (inspect)",
        task="binary",
        description="Predict which units are defective; pull those for inspection.",
        positive_decision="inspect the unit",
        negative_decision="ship without inspection",
        payoff=Payoff(tp=-25.0, fp=-5.0, tn=0.0, fn=-250.0),
        money_column_hint="unit value",
        money_multipliers=Payoff(tp=-0.10, fp=0.0, tn=0.0, fn=-1.0),
        money_fixed=Payoff(tp=-5.0, fp=-5.0, tn=0.0, fn=-50.0),
        monthly_volume=100000,
        review_capacity=3000,
        status_quo=StatusQuo("approve_all"),
        one_off_costs=OneOffCosts(integration=30000.0, labelling=5000.0),
        running_costs=RunningCosts(
            maintenance_per_year=6000.0, retrains_per_year=4, cost_per_retrain=1500.0
        ),
        discount_rate_per_year=0.10,
        horizon_months=36,
        sources={
            "payoff.tp": "-$25: $5 inspection + in-factory rework at 10% of a $200 unit — "
            "assumptions",
            "payoff.fp": "-$5: an inspection (~5 inspector-minutes) of a good unit — assumption",
            "payoff.tn": "0: reference = a good unit shipped",
            "payoff.fn": "-$250: a field failure: replacement $200 unit + $50 return logistics — "
            "assumption; in line with the quality 'rule of ten' (a defect costs ~10x more at "
            "each later stage), a heuristic",
            "money_multipliers.tp": "-10% of the unit value: in-factory rework — assumption",
            "money_multipliers.fp": "0 x value: a good unit is unharmed by inspection",
            "money_multipliers.tn": "0 x value: reference",
            "money_multipliers.fn": "-100% of the unit value: the unit is replaced — assumption",
            "money_fixed.tp": "-$5: inspection — assumption",
            "money_fixed.fp": "-$5: inspection — assumption",
            "money_fixed.tn": "0: reference",
            "money_fixed.fn": "-$50: return logistics and handling — assumption",
            "monthly_volume": "100,000 units a month — assumption",
            "review_capacity": "3,000 inspections a month: 2 inspectors x ~75 units a day x 20 "
            "days — assumption",
            "status_quo.policy": "approve_all: ship without targeted inspection (end-of-line "
            "tests already passed) — assumption",
            "status_quo.cost_per_decision": "0: no targeted inspection today",
            "one_off_costs.integration": "$30,000: connecting line/MES data, ~1.5 engineer-months "
            "— assumption",
            "one_off_costs.labelling": "$5,000: tagging historic defect records — assumption",
            "running_costs.maintenance_per_year": f"$6,000: {_UPKEEP}",
            "running_costs.retrains_per_year": "4: quarterly, as lines and suppliers change — "
            "assumption",
            "running_costs.cost_per_retrain": "$1,500: checking and releasing a retrain — "
            "assumption",
            "discount_rate_per_year": _RATE,
            "horizon_months": _HORIZON,
        },
    )


def _routing() -> UseCase:
    return UseCase(
        key="customer_service_routing",
        title="Customer-service routing (from text)",
        task="binary",
        description="Predict from the ticket text whether it needs the specialist team. "
        "Multiclass routing is reduced to 'specialist or not'; for several teams, make one use "
        "case per team.",
        positive_decision="route to the specialist team",
        negative_decision="route to the general queue",
        payoff=Payoff(tp=0.0, fp=-4.0, tn=0.0, fn=-8.0),
        money_column_hint=None,
        money_multipliers=None,
        money_fixed=None,
        monthly_volume=30000,
        review_capacity=5000,
        status_quo=StatusQuo("manual_review", cost_per_decision=1.5),
        one_off_costs=OneOffCosts(integration=20000.0, labelling=6000.0),
        running_costs=RunningCosts(
            maintenance_per_year=4000.0, retrains_per_year=4, cost_per_retrain=1000.0
        ),
        discount_rate_per_year=0.10,
        horizon_months=36,
        sources={
            "payoff.tp": "0: reference = every ticket handled by the right team first time",
            "payoff.fp": "-$4: a general ticket sent to specialists costs ~5 extra specialist-"
            "minutes at ~$48/h — assumption",
            "payoff.tn": "0: reference",
            "payoff.fn": "-$8: a specialist ticket left in the general queue costs a transfer, "
            "~10 wasted agent-minutes at ~$48/h; repeat contacts ignored — assumption",
            "monthly_volume": "30,000 tickets a month — assumption",
            "review_capacity": "5,000 tickets a month: specialist team capacity — assumption",
            "status_quo.policy": "manual_review: a dispatcher reads every ticket, assumed to "
            "route perfectly — assumption",
            "status_quo.cost_per_decision": "$1.50: ~2 dispatcher-minutes at ~$45/h — assumption",
            "one_off_costs.integration": "$20,000: helpdesk API hook-up, ~1 engineer-month — "
            "assumption",
            "one_off_costs.labelling": "$6,000: 3,000 tickets labelled at ~$2 each — assumption",
            "running_costs.maintenance_per_year": f"$4,000: {_UPKEEP}",
            "running_costs.retrains_per_year": "4: quarterly, as products and topics change — "
            "assumption",
            "running_costs.cost_per_retrain": "$1,000: checking and releasing a retrain — "
            "assumption",
            "discount_rate_per_year": _RATE,
            "horizon_months": _HORIZON,
        },
    )


USE_CASES: dict[str, UseCase] = {
    case.key: case
    for case in (_credit(), _fraud(), _churn(), _healthcare(), _manufacturing(), _routing())
}


def get_use_case(key: str) -> UseCase:
    """The template for `key`; an unknown key raises ValueError listing the known ones."""
    if key not in USE_CASES:
        raise ValueError(f"unknown use case {key=}; known: {list(USE_CASES)}")
    return USE_CASES[key]
