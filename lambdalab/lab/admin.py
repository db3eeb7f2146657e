from django.contrib import admin

from .models import Function, FunctionVersion, Invocation


class VersionInline(admin.TabularInline):
    model = FunctionVersion
    fields = ("number", "handler", "memory_mb", "timeout_s", "tmp_mb", "created")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Function)
class FunctionAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "session_key", "updated")
    search_fields = ("name", "owner__username")
    inlines = [VersionInline]


@admin.register(Invocation)
class InvocationAdmin(admin.ModelAdmin):
    list_display = ("request_id", "function", "status", "cold", "init_reason", "duration_ms", "created")
    list_filter = ("status", "cold")
    readonly_fields = [f.name for f in Invocation._meta.fields]
