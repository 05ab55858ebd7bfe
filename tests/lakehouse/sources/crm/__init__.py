"""Tests of the CRM slice."""
