from django.urls import path

from routing import views

PERSON = "roster/people/<int:profile_id>"
SHIFT = "roster/shifts/<int:shift_id>"

urlpatterns = [
    path("presence", views.presence, name="presence"),
    path("board/", views.board, name="board"),
    path("board/cases/<int:escalation_id>/reassign", views.board_reassign, name="board_reassign"),
    path("roster/", views.roster, name="roster"),
    path("roster/coverage/", views.coverage, name="roster_coverage"),
    path("roster/people/add", views.roster_person_add, name="roster_person_add"),
    path(f"{PERSON}/", views.roster_person, name="roster_person"),
    path(f"{PERSON}/edit", views.roster_person_edit, name="roster_person_edit"),
    path(f"{PERSON}/shifts/add", views.roster_shift_add, name="roster_shift_add"),
    path(f"{SHIFT}/remove", views.roster_shift_remove, name="roster_shift_remove"),
    path("roster/skills/add", views.roster_named_add, {"kind": "skill"}, name="roster_skill_add"),
    path("roster/teams/add", views.roster_named_add, {"kind": "team"}, name="roster_team_add"),
]
