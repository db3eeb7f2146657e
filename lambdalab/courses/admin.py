from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from lambdalab.lab.services import LabError

from . import services
from .models import Course, Scenario


class ScenarioInline(admin.TabularInline):
    model = Scenario
    fields = ("order", "title", "slug")
    extra = 0
    show_change_link = True


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "class_code", "dashboard")
    prepopulated_fields = {"slug": ("title",)}
    inlines = [ScenarioInline]

    @admin.display(description="Class dashboard")
    def dashboard(self, course: Course) -> str:
        return format_html('<a href="{}">dashboard</a>', reverse("courses:dashboard", args=[course.slug]))


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = ("title", "course", "order", "preview_links")
    list_editable = ("order",)  # reorder a course's scenarios from the list
    list_filter = ("course",)
    prepopulated_fields = {"slug": ("title",)}
    save_as = True  # "Save as new": a copy with the changes made in the form
    actions = ["clone"]
    readonly_fields = ("preview_links",)

    @admin.display(description="Preview")
    def preview_links(self, scenario: Scenario) -> str:
        if scenario.pk is None:
            return "Save the scenario to preview it."
        # buttons of the page's own form (the change form, or the change list's): its CSRF token goes along
        url = reverse("admin:courses_scenario_preview", args=[scenario.pk])
        return format_html(
            '<button type="submit" formaction="{0}" formmethod="post" formnovalidate name="code" value="solution">'
            "Preview with the solution</button> "
            '<button type="submit" formaction="{0}" formmethod="post" formnovalidate name="code" value="starter">'
            "with the starter code</button>",
            url,
        )

    @admin.action(description="Clone the selected scenarios (each at the end of its course)")
    def clone(self, request: HttpRequest, queryset) -> None:
        if not self.has_add_permission(request):
            raise PermissionDenied
        made = [services.scenario_clone(scenario=s) for s in queryset]
        self.message_user(request, f"Cloned: {', '.join(c.slug for c in made)}", messages.SUCCESS)

    def get_urls(self):
        preview = self.admin_site.admin_view(require_POST(self.preview_view))
        return [path("<int:pk>/preview/", preview, name="courses_scenario_preview"), *super().get_urls()]

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponseRedirect:
        """Open the scenario as a student would, on a fresh function of the instructor's own (the
        reference solution or the starter code); the attempt never counts in a dashboard."""
        scenario = get_object_or_404(Scenario.objects.select_related("course"), pk=pk)
        if not self.has_view_permission(request, scenario):
            raise PermissionDenied
        try:
            attempt = services.attempt_preview(
                scenario=scenario,
                user=request.user,
                code=request.POST.get("code", "solution"),
                address=request.META.get("REMOTE_ADDR", "unknown"),
            )
        except LabError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:courses_scenario_change", args=[pk]))
        return HttpResponseRedirect(f"{scenario.get_absolute_url()}?attempt={attempt.pk}")
