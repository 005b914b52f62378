"""The hard rules every Baton ships with (DESIGN §3). Admins may add to them; nothing lowers them."""

from django.db import migrations

HARD_RULES = [
    {
        "code": "emergency",
        "name": "Emergency",
        "description": "Danger to life or property: supervisors are alerted at once.",
        "keywords": [
            "emergency", "ambulance", "call 911", "call 999", "call 112", "can't breathe",
            "cannot breathe", "chest pain", "unconscious", "house is on fire", "fire in",
            "someone is hurt", "bleeding heavily",
        ],
        "level": 4, "priority": 1, "skill": "emergency",
    },
    {
        "code": "gas_leak",
        "name": "Gas leak",
        "description": "Gas or carbon monoxide: the customer is told to leave and call the emergency line.",
        "keywords": [
            "gas leak", "smell gas", "smell of gas", "smells of gas", "smelling gas",
            "carbon monoxide", "co alarm", "co detector",
        ],
        "level": 4, "priority": 1, "skill": "emergency",
    },
    {
        "code": "medical",
        "name": "Medical",
        "description": "Health and medication questions a person must answer.",
        "keywords": [
            "overdose", "suicide", "suicidal", "self-harm", "self harm", "allergic reaction",
            "anaphylaxis", "medication error", "wrong medication", "side effects", "poisoning",
        ],
        "level": 3, "priority": 1, "skill": "medical",
    },
    {
        "code": "legal",
        "name": "Legal",
        "description": "Legal threats and regulator complaints.",
        "keywords": [
            "lawyer", "attorney", "solicitor", "legal action", "ombudsman", "regulator",
            "data protection authority", "gdpr complaint", "small claims",
        ],
        "level": 3, "priority": 2, "skill": "legal",
    },
    {
        "code": "lawsuit",
        "name": "Lawsuit",
        "description": "The customer threatens to sue or has sued.",
        "keywords": ["lawsuit", "sue you", "suing you", "take you to court", "class action"],
        "pattern": r"\bsu(?:e|ing)\s+(?:you|your\s+company|them)\b",
        "level": 3, "priority": 2, "skill": "legal",
    },
    {
        "code": "account_closure",
        "name": "Account closure",
        "description": "Closing or deleting an account is decided by a person.",
        "keywords": [
            "close my account", "closing my account", "delete my account", "cancel my account",
            "terminate my account", "close the account", "delete all my data",
        ],
        "action_names": [],
        "level": 3, "priority": 2, "skill": "retention",
    },
]


def forwards(apps, schema_editor):
    PolicyRule = apps.get_model("escalations", "PolicyRule")
    for rule in HARD_RULES:
        PolicyRule.objects.update_or_create(
            code=rule["code"],
            defaults={
                "name": rule["name"],
                "description": rule["description"],
                "keywords": rule["keywords"],
                "pattern": rule.get("pattern", ""),
                "action_names": rule.get("action_names", []),
                "level": rule["level"],
                "priority": rule["priority"],
                "skill": rule["skill"],
                "hard": True,
                "enabled": True,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("escalations", "0002_audit_append_only")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
