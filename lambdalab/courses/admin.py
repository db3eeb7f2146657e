from django.contrib import admin

from .models import Course, Scenario


class ScenarioInline(admin.TabularInline):
    model = Scenario
    fields = ("order", "title", "slug")
    extra = 0
    show_change_link = True


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "class_code")
    prepopulated_fields = {"slug": ("title",)}
    inlines = [ScenarioInline]


@admin.register(Scenario)
class ScenarioAdmin(admin.ModelAdmin):
    list_display = ("title", "course", "order")
    list_filter = ("course",)
    prepopulated_fields = {"slug": ("title",)}
