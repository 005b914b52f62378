"""The roster (skills, teams, reviewer profiles, shifts, presence) and SLA targets."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Skill(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Presence(models.TextChoices):
    ONLINE = "online", "Online"
    AWAY = "away", "Away"
    OFFLINE = "offline", "Offline"


class ReviewerProfile(models.Model):
    """A person on the roster. The row is also the lock that serialises their capacity."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_profile"
    )
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="members"
    )
    languages = models.JSONField(default=list, blank=True, help_text='e.g. ["en", "de"]')
    capacity = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    presence = models.CharField(max_length=8, choices=Presence.choices, default=Presence.OFFLINE)
    presence_changed_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="Last heartbeat of an open console tab."
    )
    last_assigned_at = models.DateTimeField(
        null=True, blank=True, help_text="For 'longest idle first'."
    )

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return self.user.get_full_name() or self.user.get_username()


class ReviewerSkill(models.Model):
    profile = models.ForeignKey(ReviewerProfile, on_delete=models.CASCADE, related_name="skills")
    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="reviewers")
    proficiency = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "skill"], name="reviewer_skill_once")
        ]

    def __str__(self) -> str:
        return f"{self.profile}: {self.skill} ({self.proficiency})"


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Shift(models.Model):
    """A weekly shift in Baton's time zone; one that ends before it starts runs overnight."""

    profile = models.ForeignKey(ReviewerProfile, on_delete=models.CASCADE, related_name="shifts")
    weekday = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(6)], help_text="0 = Monday … 6 = Sunday"
    )
    starts = models.TimeField()
    ends = models.TimeField()

    class Meta:
        ordering = ["profile", "weekday", "starts"]
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="shift_weekday"),
            models.CheckConstraint(condition=~Q(starts=models.F("ends")), name="shift_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.profile} {self.weekday_name} {self.starts:%H:%M}-{self.ends:%H:%M}"

    @property
    def weekday_name(self) -> str:
        return WEEKDAYS[self.weekday]

    def clean(self) -> None:
        if self.starts == self.ends:
            raise ValidationError({"ends": "A shift must not start and end at the same time."})


class SlaTarget(models.Model):
    """Per priority band: time to accept and to resolve, from the handoff."""

    priority = models.PositiveSmallIntegerField(unique=True)
    accept_seconds = models.PositiveIntegerField()
    resolve_seconds = models.PositiveIntegerField()
    warning_share = models.FloatField(
        default=0.75,
        validators=[MinValueValidator(0.1), MaxValueValidator(0.99)],
        help_text="Warn when this share of the target has passed.",
    )
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority"]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__gte=1, priority__lte=4), name="sla_priority_band"
            ),
            models.CheckConstraint(
                condition=Q(accept_seconds__lte=models.F("resolve_seconds")),
                name="sla_accept_within_resolve",
            ),
        ]

    def __str__(self) -> str:
        return f"P{self.priority}: accept {self.accept_seconds}s, resolve {self.resolve_seconds}s"
