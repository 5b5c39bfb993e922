from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0001_workshops"),
    ]

    operations = [
        migrations.AddField(
            model_name="labroom",
            name="creator",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="labroom",
            name="notes",
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name="question",
            name="correct",
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="savedrun",
            name="questions",
            field=models.JSONField(default=list),
        ),
    ]
