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
    ]
