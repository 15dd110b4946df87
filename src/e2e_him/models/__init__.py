"""The E2E-HIM network (Section III) and its LightningModule."""
