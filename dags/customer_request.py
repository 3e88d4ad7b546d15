"""Customer request management.

A counterparty (a customer, a supplier) registers a request on the public request page, without a
login, or staff register it for them. The process finds the counterparty's card by email or creates
it (a first request is flagged "first time"), checks the request against its type's own fields in
the catalog (``include/catalogs.yaml``), hands it to the specialist responsible for that
counterparty and tells the type's executors. The specialist takes the request into work (or
cancels it), then decides from the decision catalog with an explanation; the counterparty is
emailed the result with a link to accept or dispute it. A dispute, with the counterparty's claim and
its files, goes to the head of the specialist's unit, whose final decision is emailed too. A
counterparty that says nothing for two weeks has accepted. The requester sees every stage:
accepted, in work, done or cancelled.

An Airflow DAG built with Tempo's ``process``.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowFailException

from tempo import (
    SLA,
    SLA_ACTOR,
    Choice,
    CounterpartyContact,
    CounterpartyResponsible,
    Decide,
    Email,
    File,
    Form,
    HeadOfUnit,
    HumanStep,
    NotifyStep,
    Role,
    Text,
    load_catalog,
    process,
    record,
    set_stage,
)

#: Days a counterparty has to accept or dispute a result before the request closes as accepted:
#: one week to answer, then one more before silence counts as acceptance.
ANSWER_WITHIN = timedelta(days=7)
SILENCE_AFTER = timedelta(days=7)

with process(
    "customer_request",
    title="Customer request",
    description="A counterparty's request: registered, handled by its specialist, decided, reported, "
    "disputed if need be, closed.",
    owner="customer_service",
    business_key="subject",
    start_form=Form(
        counterparty_name=Text(label="Counterparty", max_length=200),
        counterparty_email=Email(label="Counterparty email"),
        request_type=Choice(label="Request type", catalog="request_types"),
        subject=Text(label="Subject", max_length=200),
        description=Text(label="Description", multiline=True, max_length=5000),
    ),
) as dag:

    @task
    def register(params: dict | None = None, dag_run=None) -> dict:
        """Identify the counterparty, check the request against its type, and accept it."""
        # Imported here, not at the top: it reads the store, and DAG files are parsed often.
        from tempo import identify_counterparty

        params = params or {}
        conf = dict(getattr(dag_run, "conf", None) or {})
        catalog = load_catalog()
        try:
            request_type = catalog.request_type(params["request_type"])
        except KeyError:
            raise AirflowFailException(f"unknown request type {params.get('request_type')!r}") from None
        type_params: dict = {}
        # The public page always sends the type's fields, checked; staff registering a request from
        # Tempo's start form (a phone call, say) may not know them yet, and the specialist asks.
        if "request_params" in conf:
            try:
                type_params = request_type.form().validate(conf["request_params"] or {})
            except ValueError as exc:  # the fields' messages, one per field
                raise AirflowFailException(f"the request's {request_type.name} fields: {exc}") from None
        who = identify_counterparty(
            name=params["counterparty_name"],
            email=params["counterparty_email"],
            specialist_role=request_type.specialist_role,
        )
        record(
            request_type_name=request_type.name,
            executors_role=request_type.executors_role,
            request_params=type_params,
            contact_email=params["counterparty_email"],
        )
        set_stage("accepted")
        return {"counterparty": who.code, "first_time": who.first_time}

    registered = register()

    acknowledge = NotifyStep(
        task_id="acknowledge", to=CounterpartyContact(), template="customer_request_received"
    )

    def _executors(context, process_row):
        return Role(process_row.data["executors_role"])

    tell_executors = NotifyStep(
        task_id="tell_executors", to=Decide(_executors), template="customer_request_registered"
    )

    take = HumanStep(
        task_id="take_request",
        title="{{ 'First request' if ti.xcom_pull(task_ids='register')['first_time'] else 'Request' }} "
        "from {{ params.counterparty_name }}: {{ params.subject }}",
        instructions="{{ params.description }}",
        assign_to=CounterpartyResponsible(),
        # The note is the counterparty's to read: on its status page, and in the email if cancelled.
        form=Form(
            note=Text(
                label="Note for the counterparty",
                required=False,
                multiline=True,
                max_length=2000,
                help="Required to cancel: the counterparty is emailed this reason.",
            )
        ),
        outcomes=["take", "cancel"],
        branches={"take": "start_work", "cancel": "cancel_request"},
        # Cancelling emails the counterparty: it says why, and the page asks to confirm.
        destructive_outcomes={"cancel": "note"},
        sla=SLA(due=timedelta(hours=8), remind_before=timedelta(hours=2)),
    )

    @task
    def start_work(answer: dict) -> None:
        set_stage("in_work", note=answer["form"].get("note"))

    @task
    def cancel_request(answer: dict) -> None:
        record(cancelled_by=answer["completed_by"], cancel_reason=answer["form"].get("note"))
        set_stage("cancelled", note=answer["form"].get("note"))

    tell_cancelled = NotifyStep(
        task_id="tell_cancelled", to=CounterpartyContact(), template="customer_request_cancelled"
    )

    decide = HumanStep(
        task_id="decide",
        title="Decide on {{ params.subject }} ({{ params.counterparty_name }})",
        instructions="{{ params.description }}",
        assign_to=CounterpartyResponsible(),
        form=Form(
            decision=Choice(label="Decision", catalog="decisions"),
            explanation=Text(label="Explanation for the counterparty", multiline=True, max_length=5000),
        ),
        sla=SLA(due=timedelta(days=3)),
    )

    @task
    def record_decision(answer: dict) -> None:
        decision = load_catalog().decision(answer["form"]["decision"])
        record(
            decision=decision.code,
            decision_name=decision.name,
            explanation=answer["form"]["explanation"],
            decided_by=answer["completed_by"],
        )
        set_stage("done", note=decision.name)

    counterparty_review = HumanStep(
        task_id="counterparty_review",
        title="Result of your request: {{ params.subject }}",
        assign_to=CounterpartyContact(),
        mail_template="customer_request_result",
        form=Form(
            claim=Text(label="Your claim", required=False, multiline=True, max_length=5000),
            claim_files=File(label="Files for your claim", required=False, multiple=True),
        ),
        outcomes=["accept", "dispute"],
        branches={"accept": "accepted", "dispute": "record_claim"},
        # Silence is acceptance: two weeks without an answer close the request.
        sla=SLA(
            due=ANSWER_WITHIN, expire_after=SILENCE_AFTER, on_expiry="outcome:accept", business_time=False
        ),
    )

    @task
    def accepted(answer: dict) -> None:
        # Tempo's SLA timer answers for a counterparty that stayed silent.
        silent = answer["completed_by"] == SLA_ACTOR
        record(result_accepted_by="silence" if silent else "counterparty")

    @task
    def record_claim(answer: dict) -> None:
        record(claim=answer["form"].get("claim"), claim_files=answer["form"].get("claim_files") or [])
        set_stage("in_work", note="disputed by the counterparty")

    review_claim = HumanStep(
        task_id="review_claim",
        title="Disputed: {{ params.subject }} ({{ params.counterparty_name }})",
        instructions="The counterparty disputes the decision. Their claim:\n\n"
        "{{ ti.xcom_pull(task_ids='counterparty_review')['form']['claim'] or '(no text)' }}",
        assign_to=HeadOfUnit(CounterpartyResponsible()),
        mail_template="customer_request_claim",
        mail_attachments=True,  # the claim's files (and the request's) travel with the email
        form=Form(
            decision=Choice(label="Final decision", catalog="decisions"),
            explanation=Text(label="Explanation for the counterparty", multiline=True, max_length=5000),
        ),
        sla=SLA(due=timedelta(days=2)),
    )

    @task
    def record_final(answer: dict) -> None:
        decision = load_catalog().decision(answer["form"]["decision"])
        record(
            final_decision=decision.code,
            final_decision_name=decision.name,
            final_explanation=answer["form"]["explanation"],
            final_decided_by=answer["completed_by"],
        )
        set_stage("done", note=f"claim reviewed: {decision.name}")

    tell_final = NotifyStep(task_id="tell_final", to=CounterpartyContact(), template="customer_request_final")

    @task(trigger_rule="none_failed_min_one_success")
    def close_request() -> None:
        record(closed=True)

    started = start_work(take.output)
    cancelled = cancel_request(take.output)
    decided = record_decision(decide.output)
    accepted_result = accepted(counterparty_review.output)
    claim = record_claim(counterparty_review.output)
    final = record_final(review_claim.output)

    registered >> [acknowledge, tell_executors, take]
    cancelled >> tell_cancelled
    started >> decide
    decided >> counterparty_review
    claim >> review_claim
    final >> tell_final
    [accepted_result, tell_final] >> close_request()
