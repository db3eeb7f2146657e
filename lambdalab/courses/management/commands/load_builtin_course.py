from django.core.management.base import BaseCommand

from lambdalab.courses import builtin
from lambdalab.courses.models import Course, Scenario


class Command(BaseCommand):
    help = "Create or bring up to date the built-in course (the migrations load it once)."

    def handle(self, *args, **options):
        n = builtin.load(Course, Scenario)
        self.stdout.write(f"{builtin.TITLE}: {n} scenarios")
