from django import forms
from django.utils.translation import gettext_lazy as _

from annotation.models import Role


class MembershipAddForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)
