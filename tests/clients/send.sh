#!/bin/sh
# The provider page's PHP snippet as one curl command: POST form-urlencoded, XML flux, the same
# timeouts. Point SMSQ_GATEWAY_URL at smsq's gateway (.../http/9.0/sendSms/) instead of AllMySMS.
set -eu
message='Envoi de SMS test avec AllMySMS.com'
sender='allmysms'
msisdn='33612345678'
smsData="<DATA>
   <MESSAGE><![CDATA[$message]]></MESSAGE>
   <TPOA>$sender</TPOA>
   <SMS>
      <MOBILEPHONE>$msisdn</MOBILEPHONE>
   </SMS>
</DATA>"
curl --silent --show-error --connect-timeout 10 --speed-limit 1024 --speed-time 1 \
  --data-urlencode "login=$SMSQ_GATEWAY_LOGIN" --data-urlencode "apiKey=$SMSQ_GATEWAY_API_KEY" \
  --data-urlencode "smsData=$smsData" "$SMSQ_GATEWAY_URL"
