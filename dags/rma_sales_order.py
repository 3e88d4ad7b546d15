"""RMA -> sales order.

A support engineer (Rob) takes an RMA. Unless the part is in warranty, customer service (Sandra)
must create a sales order before repair (John) may start. Tempo asks Sandra, tells Rob the S/O
number, writes it onto the RMA record, and tells John he can start.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import task

from tempo import SLA, Checkbox, Escalate, Form, HumanStep, NotifyStep, Requester, Role, Text, process, record

with process(
    "rma_sales_order",
    title="RMA sales order",
    description="Customer service creates the sales order an out-of-warranty RMA needs before repair.",
    owner="support",
    business_key="rma_number",
    deadline=timedelta(days=2),
    start_form=Form(
        rma_number=Text(
            label="RMA number", pattern=r"RMA-\d{4,10}", pattern_message="Use the form RMA-12345."
        ),
        customer=Text(label="Customer", max_length=200),
        part=Text(label="Part", max_length=200),
        in_warranty=Checkbox(label="In warranty"),
    ),
) as dag:

    @task.branch
    def check_warranty(params: dict | None = None) -> str:
        return "repair_can_start" if (params or {}).get("in_warranty") else "create_sales_order"

    create_sales_order = HumanStep(
        task_id="create_sales_order",
        title="Create a sales order for {{ params.rma_number }}",
        instructions=(
            "RMA {{ params.rma_number }} for {{ params.customer }} (part: {{ params.part }}) is out of "
            "warranty. Create the sales order in the ERP and enter its number here."
        ),
        assign_to=Role("customer_service"),
        form=Form(
            so_number=Text(
                label="S/O number", pattern=r"SO-\d{6}", pattern_message="Use the form SO-123456."
            ),
        ),
        # One working day of customer service's calendar; a reminder an hour before the end, then
        # every two hours; Sandra's head of department hears of it when it is half a day late.
        sla=SLA(
            due=timedelta(hours=8),
            remind_before=timedelta(hours=1),
            repeat_every=timedelta(hours=2),
            max_reminders=3,
            escalations=(Escalate(after=timedelta(hours=4), to="unit_head"),),
        ),
    )

    @task
    def record_so_number(answer: dict) -> str:
        so_number = answer["form"]["so_number"]
        record(so_number=so_number, so_created_by=answer["completed_by"])
        return so_number

    tell_requester = NotifyStep(
        task_id="tell_requester",
        to=Requester(),
        template="rma_so_created",
        context={"created_by": "{{ ti.xcom_pull(task_ids='create_sales_order')['completed_by'] }}"},
    )

    repair_can_start = NotifyStep(
        task_id="repair_can_start",
        to=Role("repair_technician"),
        template="rma_repair_can_start",
        trigger_rule="none_failed_min_one_success",
    )

    so_number = record_so_number(create_sales_order.output)
    check_warranty() >> [create_sales_order, repair_can_start]
    so_number >> tell_requester >> repair_can_start
