"""Templates per event kind and language, with ``{variables}`` from the notification's
data (plus ``count``). An aggregated burst (count > 1) uses the kind's ``many``
template when it has one. A language or kind without its own template falls back to
English; a missing variable renders empty (a template never fails a push)."""

from __future__ import annotations

import string
from collections.abc import Mapping

from genstudio.core.model.notifications import Notification
from genstudio.ports.notification_texts import Text

#: (title, body) per kind; ``kind:many`` for bursts
Catalog = Mapping[str, tuple[str, str]]

EN: Catalog = {
    "job_succeeded": ("Your creation is ready", "Your {jobKind} is ready. Tap to see it."),
    "job_succeeded:many": ("Your creations are ready", "{count} of your creations are ready."),
    "job_failed": (
        "Generation failed",
        "Your {jobKind} could not be made; {credits} credits were returned.",
    ),
    "job_dead_lettered": (
        "Generation failed",
        "Your {jobKind} failed after several tries; {credits} credits were returned.",
    ),
    "training_progress": ("Training your model", "Your model is {progress}% trained."),
    "training_succeeded": ("Your model is ready", "Your personal model is trained. Try it now!"),
    "training_failed": (
        "Training failed",
        "Your model could not be trained; {credits} credits were returned.",
    ),
    "credits_granted": ("Credits added", "{amount} credits were added to your balance."),
    "credits_clawed_back": (
        "Credits removed",
        "{amount} credits were removed after a refund by the store.",
    ),
    "subscription_renewed": ("Subscription renewed", "Your {plan} plan was renewed."),
    "subscription_in_grace": (
        "Payment problem",
        "We could not renew your {plan} plan. Update your payment method to keep it.",
    ),
    "subscription_expiring": ("Subscription ending", "Your {plan} plan ends soon."),
    "subscription_expired": ("Subscription ended", "Your {plan} plan has ended."),
    "low_balance": ("Running low on credits", "You have {balance} credits left."),
    "post_liked": ("New like", "{actorName} liked your {postKind}."),
    "post_liked:many": ("New likes", "{count} people liked your {postKind}."),
    "post_commented": ("New comment", "{actorName} commented on your {postKind}."),
    "post_commented:many": ("New comments", "{count} new comments on your {postKind}."),
    "report_outcome": ("Report reviewed", "We reviewed your report. Thank you."),
    "announcement": ("{title}", "{body}"),
}

DE: Catalog = {
    "job_succeeded": ("Dein Werk ist fertig", "Dein {jobKind} ist fertig. Tippe, um es anzusehen."),
    "job_succeeded:many": ("Deine Werke sind fertig", "{count} deiner Werke sind fertig."),
    "job_failed": (
        "Erstellung fehlgeschlagen",
        "Dein {jobKind} konnte nicht erstellt werden; {credits} Credits wurden erstattet.",
    ),
    "job_dead_lettered": (
        "Erstellung fehlgeschlagen",
        "Dein {jobKind} ist nach mehreren Versuchen fehlgeschlagen; {credits} Credits wurden"
        " erstattet.",
    ),
    "training_progress": (
        "Dein Modell wird trainiert",
        "Dein Modell ist zu {progress}% trainiert.",
    ),
    "training_succeeded": ("Dein Modell ist fertig", "Dein persönliches Modell ist trainiert."),
    "training_failed": (
        "Training fehlgeschlagen",
        "Dein Modell konnte nicht trainiert werden; {credits} Credits wurden erstattet.",
    ),
    "credits_granted": ("Credits gutgeschrieben", "{amount} Credits wurden gutgeschrieben."),
    "credits_clawed_back": (
        "Credits abgezogen",
        "Nach einer Erstattung durch den Store wurden {amount} Credits abgezogen.",
    ),
    "subscription_renewed": ("Abo verlängert", "Dein {plan}-Abo wurde verlängert."),
    "subscription_in_grace": (
        "Zahlungsproblem",
        "Dein {plan}-Abo konnte nicht verlängert werden. Bitte aktualisiere deine Zahlungsart.",
    ),
    "subscription_expiring": ("Abo endet bald", "Dein {plan}-Abo endet bald."),
    "subscription_expired": ("Abo beendet", "Dein {plan}-Abo ist beendet."),
    "low_balance": ("Wenig Credits", "Du hast noch {balance} Credits."),
    "post_liked": ("Neues Like", "{actorName} gefällt dein {postKind}."),
    "post_liked:many": ("Neue Likes", "{count} Personen gefällt dein {postKind}."),
    "post_commented": ("Neuer Kommentar", "{actorName} hat dein {postKind} kommentiert."),
    "post_commented:many": ("Neue Kommentare", "{count} neue Kommentare zu deinem {postKind}."),
    "report_outcome": ("Meldung geprüft", "Wir haben deine Meldung geprüft. Danke!"),
}

ES: Catalog = {
    "job_succeeded": ("Tu creación está lista", "Tu {jobKind} está listo. Toca para verlo."),
    "job_succeeded:many": (
        "Tus creaciones están listas",
        "{count} de tus creaciones están listas.",
    ),
    "job_failed": (
        "La generación falló",
        "No se pudo crear tu {jobKind}; se devolvieron {credits} créditos.",
    ),
    "job_dead_lettered": (
        "La generación falló",
        "Tu {jobKind} falló tras varios intentos; se devolvieron {credits} créditos.",
    ),
    "training_succeeded": ("Tu modelo está listo", "Tu modelo personal está entrenado."),
    "credits_granted": ("Créditos añadidos", "Se añadieron {amount} créditos a tu saldo."),
    "credits_clawed_back": (
        "Créditos retirados",
        "Se retiraron {amount} créditos tras un reembolso de la tienda.",
    ),
    "subscription_renewed": ("Suscripción renovada", "Tu plan {plan} se renovó."),
    "subscription_expired": ("Suscripción terminada", "Tu plan {plan} ha terminado."),
    "low_balance": ("Te quedan pocos créditos", "Te quedan {balance} créditos."),
    "post_liked": ("Nuevo me gusta", "A {actorName} le gustó tu {postKind}."),
    "post_liked:many": ("Nuevos me gusta", "A {count} personas les gustó tu {postKind}."),
}

#: words for a job's kind inside a sentence
JOB_KINDS: Mapping[str, Mapping[str, str]] = {
    "en": {"image": "image", "edit": "edit", "video": "video", "training": "model"},
    "de": {"image": "Bild", "edit": "Bearbeitung", "video": "Video", "training": "Modell"},
    "es": {"image": "imagen", "edit": "edición", "video": "vídeo", "training": "modelo"},
}

CATALOGS: Mapping[str, Catalog] = {"en": EN, "de": DE, "es": ES}


class _Lenient(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return ""


_FORMATTER = string.Formatter()


class TemplateTexts:
    def __init__(self, catalogs: Mapping[str, Catalog] | None = None) -> None:
        self.catalogs = catalogs or CATALOGS

    def render(self, notification: Notification, language: str) -> Text:
        catalog = self.catalogs.get(language, self.catalogs["en"])
        lang = language if language in self.catalogs else "en"
        kind = notification.kind.value
        key = f"{kind}:many" if notification.count > 1 else kind
        template = (
            catalog.get(key)
            or self.catalogs["en"].get(key)
            or catalog.get(kind)
            or self.catalogs["en"].get(kind)
            or ("genstudio", "")
        )
        if template is self.catalogs["en"].get(key) and key not in catalog:
            lang = "en"  # an English sentence gets English words in it
        values = _Lenient(notification.data)
        values["count"] = notification.count
        job_kind = str(notification.data.get("jobKind") or "")
        values["jobKind"] = JOB_KINDS.get(lang, JOB_KINDS["en"]).get(job_kind, job_kind)
        title, body = (_FORMATTER.vformat(part, (), values) for part in template)
        return Text(title=title, body=body)


__all__ = ["CATALOGS", "TemplateTexts"]
