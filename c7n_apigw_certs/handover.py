"""The hand-over: what the owner of a template must change, when ``rotate`` leaves a stage (or a
certificate) to it instead of fighting the template. Pure: entries and their text.

A stage switched behind its template's back drifts, and the next update of the stack (or the
next ``terraform apply``) puts the template's certificate back (docs/aws-behaviour.md, facts 29
and 30). A certificate a template owns must not be deleted behind it either: CloudFormation's
next update fails on it, and Terraform creates a new one, with a PEM no backend trusts. So the
rotation generates the successor and publishes its trust as usual, then tells the owner:
``handover.json`` in the policy's output, and one log line per entry.
"""
from .owners import CLOUDFORMATION, describe

STAGE_ACTION = "set ClientCertificateId to %s"


def stage_entry(old_id, new_id, stage, found, not_before, reason):
    """One stage whose owner must switch it."""
    return {
        "kind": "stage",
        "certificate": old_id,
        "successor": new_id,
        "stage": "stage:%s/%s" % (stage["apiId"], stage["stageName"]),
        "protocol": stage["protocol"],
        "apiName": stage.get("apiName", ""),
        "owner": found,
        "reason": reason,
        "not-before": not_before,
        "action": STAGE_ACTION % new_id + stage_hint(found, stage, new_id),
    }


def stage_hint(found, stage, new_id):
    if found is None:
        return " (who owns the stage is not known: set it where it is defined)"
    if found["tool"] == CLOUDFORMATION:
        return (" in the template of stack %s (%s %s), then update the stack" % (
            found["stack"], "AWS::ApiGateway::Stage" if stage["protocol"] == "REST"
            else "AWS::ApiGatewayV2::Stage", found.get("logical-id", "")))
    return (" where the resource tagged %s is defined (Terraform: client_certificate_id = "
            "\"%s\"), then apply" % (found["tag"], new_id))


def certificate_entry(old_id, new_id, found):
    """The old certificate itself belongs to a template: never deleted here."""
    if found["tool"] == CLOUDFORMATION:
        action = ("stack %s owns %s (AWS::ApiGateway::ClientCertificate %s): c7n-apigw-certs "
                  "never deletes it. Once no stage uses it, remove it from the template; to keep "
                  "the successor %s under the template, pass its id as a parameter to the "
                  "stages' ClientCertificateId" % (
                      found["stack"], old_id, found.get("logical-id", ""), new_id))
    else:
        action = ("the certificate is tagged %s: c7n-apigw-certs never deletes it. Once no stage "
                  "uses it, remove it from the configuration (Terraform: import the successor "
                  "with `terraform import <address> %s` in its place, or `terraform state rm` "
                  "the old one before removing it)" % (found["tag"], new_id))
    return {"kind": "certificate", "certificate": old_id, "successor": new_id, "owner": found,
            "reason": "owned by a template", "action": action}


def line(entry):
    """The log line of an entry: who, where, what to do."""
    where = entry.get("stage") or "client-certificate:%s" % entry["certificate"]
    text = "client-certificate:%s hand-over: %s, %s (%s): %s" % (
        entry["certificate"], where, describe(entry["owner"]), entry["reason"], entry["action"])
    if entry.get("not-before"):
        text += ", not before %s" % entry["not-before"]
    return text
