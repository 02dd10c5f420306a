import logging

from xiaoer.core.logsafe import PiiMaskingFilter, mask_pii


def test_phone_numbers_and_tokens_are_masked():
    assert mask_pii("call 13912345678 now") == "call 139****5678 now"
    assert mask_pii("+86 139-1234-5678") == "139****5678"
    assert "s3cr3t" not in mask_pii("access_token=s3cr3t&x=1")
    assert mask_pii("订单 6938271045123400001") == "订单 6938271045123400001"


def test_filter_masks_log_records(caplog):
    logger = logging.getLogger("xiaoer.test")
    caplog.handler.addFilter(PiiMaskingFilter())
    with caplog.at_level(logging.INFO):
        logger.info("buyer phone %s", "13912345678")
    assert "13912345678" not in caplog.text
    assert "139****5678" in caplog.text
