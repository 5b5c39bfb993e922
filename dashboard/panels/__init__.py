"""The room's panels, one module per family: each turns an observation (plain data, see
``dashboard.panels.observe``) into what its templates in ``templates/dashboard/panels/`` show.
``dashboard.panels.presenters`` names them all."""
